package registry

import (
	"context"
	"crypto/x509"
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

// notFound is a 404 in the registry's words; it is ErrNotFound.
type notFound string

func (e notFound) Error() string        { return string(e) }
func (e notFound) Is(target error) bool { return target == ErrNotFound }

// describeError turns what go-containerregistry and net/http return into
// one line a user can act on; the cause stays wrapped.
func describeError(err error) error {
	var te *transport.Error
	var dnsErr *net.DNSError
	var unknownCA x509.UnknownAuthorityError
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
					return notFound("manifest unknown")
				case transport.NameUnknownErrorCode:
					return notFound("repository name not known to registry")
				case transport.BlobUnknownErrorCode:
					return notFound("blob unknown to registry")
				}
			}
			return fmt.Errorf("%w: %v", ErrNotFound, te)
		}
		return err
	case errors.Is(err, http.ErrSchemeMismatch):
		return fmt.Errorf("the registry answers in plain HTTP, not HTTPS (allow it with --tls-verify=false, or list it in insecure-registries of registries.conf): %w", http.ErrSchemeMismatch)
	case errors.As(err, &unknownCA):
		return fmt.Errorf("%w (give its CA with --cert-dir, or in /etc/containers/certs.d/HOST/ca.crt)", unknownCA)
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
