package registry

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Options are what pull, push and login share: how to reach a registry
// and who to be there. The zero value is docker's behaviour.
type Options struct {
	// Insecure allows plain HTTP and TLS without verification for every
	// registry (podman's --tls-verify=false).
	Insecure bool
	// Verify requires HTTPS with verified certificates even for the
	// registries insecure by default (podman's explicit --tls-verify).
	Verify bool
	// InsecureRegistries lists more hosts (host or host:port) treated as
	// insecure, as docker's insecure-registries; localhost and
	// 127.0.0.0/8 always are.
	InsecureRegistries []string
	// CertDir, when set, holds the CA certificates (*.crt) and client
	// certificate (*.cert + *.key) for every registry (podman's --cert-dir),
	// instead of CertsRoots/HOST/.
	CertDir string
	// CertsRoots are the directories with one subdirectory of
	// certificates per registry host (nil: DefaultCertsRoots).
	CertsRoots []string
	// AuthFile is the credentials file to read first and the one login
	// and logout change ("": docker's config.json).
	AuthFile string
	// Keychain replaces the credentials lookup (tests).
	Keychain authn.Keychain
	// UserAgent is sent with every request.
	UserAgent string
	// Progress receives what happens to each layer (nil: nothing).
	Progress Progress
}

// DefaultCertsRoots are where per-registry certificates are looked for,
// as podman and docker do.
var DefaultCertsRoots = []string{"/etc/containers/certs.d", "/etc/docker/certs.d"}

// remoteOptions returns go-containerregistry's options to talk to reg.
func (o *Options) remoteOptions(ctx context.Context, reg string) ([]remote.Option, error) {
	tr, err := o.transport(reg)
	if err != nil {
		return nil, err
	}
	kc := o.Keychain
	if kc == nil {
		kc = o.keychain()
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(tr), remote.WithAuthFromKeychain(kc)}
	if o.UserAgent != "" {
		opts = append(opts, remote.WithUserAgent(o.UserAgent))
	}
	return opts, nil
}

// nameOptions returns the options to parse a reference to reg with: an
// insecure registry may be reached in plain HTTP.
func (o *Options) nameOptions(reg string) []name.Option {
	if o.insecure(reg) {
		return []name.Option{name.Insecure}
	}
	return nil
}

// resolve re-parses ref with the options its registry needs.
func (o *Options) resolve(ref Reference) (name.Reference, error) {
	r, err := name.ParseReference(ref.ref.String(), o.nameOptions(ref.ref.Context().RegistryStr())...)
	if err != nil {
		return nil, fmt.Errorf("invalid reference format %q: %w", ref, err)
	}
	return r, nil
}

// client returns an HTTP client for reg with credentials for scopes, for
// the few requests remote has no function for (login's check, a ranged
// blob request).
func (o *Options) client(ctx context.Context, reg name.Registry, auth authn.Authenticator, scopes []string) (*http.Client, error) {
	tr, err := o.transport(reg.RegistryStr())
	if err != nil {
		return nil, err
	}
	rt, err := transportWithAuth(ctx, reg, auth, tr, scopes)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: rt}, nil
}

// connect resolves ref with the options its registry needs and returns
// it with go-containerregistry's options for that registry and a puller.
func (o *Options) connect(ctx context.Context, ref Reference) (name.Reference, []remote.Option, *remote.Puller, error) {
	rr, err := o.resolve(ref)
	if err != nil {
		return nil, nil, nil, err
	}
	ropts, err := o.remoteOptions(ctx, rr.Context().RegistryStr())
	if err != nil {
		return nil, nil, nil, err
	}
	puller, err := remote.NewPuller(ropts...)
	if err != nil {
		return nil, nil, nil, err
	}
	return rr, ropts, puller, nil
}
