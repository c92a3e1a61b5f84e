package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Errors a registry operation wraps, to be told apart with errors.Is.
var (
	// ErrNotFound: the registry has no such repository, tag or manifest.
	ErrNotFound = errors.New("not found")
	// ErrUnreachable: no registry answers at that address.
	ErrUnreachable = errors.New("registry unreachable")
)

// describeError turns what go-containerregistry and net/http return into
// one line a user can act on; the cause stays wrapped.
func describeError(err error) error {
	var te *transport.Error
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return err
	case errors.As(err, &te):
		switch te.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("%w: authentication required", ErrUnauthorized)
		case http.StatusForbidden:
			return errors.New("denied: requested access to the resource is denied")
		case http.StatusNotFound:
			for _, d := range te.Errors {
				switch d.Code {
				case transport.ManifestUnknownErrorCode:
					return fmt.Errorf("manifest unknown: %w", ErrNotFound)
				case transport.NameUnknownErrorCode:
					return fmt.Errorf("repository name not known to registry: %w", ErrNotFound)
				case transport.BlobUnknownErrorCode:
					return fmt.Errorf("blob unknown to registry: %w", ErrNotFound)
				}
			}
			return fmt.Errorf("%w: %v", ErrNotFound, te)
		}
		return err
	case errors.As(err, &dnsErr):
		return fmt.Errorf("%w: unknown host %s: %v", ErrUnreachable, dnsErr.Name, dnsErr.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		var op *net.OpError
		if errors.As(err, &op) && op.Addr != nil {
			return fmt.Errorf("%w: connection refused at %s", ErrUnreachable, op.Addr)
		}
		return fmt.Errorf("%w: connection refused", ErrUnreachable)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	return err
}
