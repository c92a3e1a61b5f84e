package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// insecure reports whether reg (host or host:port) may be reached in plain
// HTTP or with TLS that is not verified: localhost and 127.0.0.0/8 always
// (as docker), and what InsecureRegistries lists: host:port, host,
// *.domain, or a CIDR range holding the registry's IP address.
func (o *Options) insecure(reg string) bool {
	if o.Verify {
		return false
	}
	if o.Insecure {
		return true
	}
	host := reg
	if h, _, err := net.SplitHostPort(reg); err == nil {
		host = h
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	if ip != nil && ip.IsLoopback() {
		return true
	}
	for _, e := range o.InsecureRegistries {
		if e == reg || e == host || strings.HasPrefix(e, "*.") && strings.HasSuffix(host, e[1:]) {
			return true
		}
		if _, n, err := net.ParseCIDR(e); err == nil && ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

// transport returns the HTTP transport for the registry reg: the system's
// CAs plus reg's own certificates, TLS verification off for an insecure
// registry, and plain HTTP to reg refused unless it is insecure.
func (o *Options) transport(reg string) (http.RoundTripper, error) {
	base, ok := remote.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, errors.New("go-containerregistry's default transport is not an *http.Transport")
	}
	tr := base.Clone()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.insecure(reg) {
		cfg.InsecureSkipVerify = true
	}
	dirs := []string{o.CertDir}
	if o.CertDir == "" {
		dirs = nil
		roots := o.CertsRoots
		if roots == nil {
			roots = DefaultCertsRoots
		}
		for _, r := range roots {
			dirs = append(dirs, filepath.Join(r, reg))
		}
	}
	for _, d := range dirs {
		if err := loadCertDir(cfg, d); err != nil {
			return nil, err
		}
	}
	tr.TLSClientConfig = cfg
	return &httpGuard{rt: tr, reg: reg, insecure: o.insecure(reg)}, nil
}

// loadCertDir adds the certificates of dir, laid out as docker's and
// podman's certs.d/HOST/: every *.crt is a CA; NAME.cert with NAME.key is
// a client certificate. A missing dir is no error.
func loadCertDir(cfg *tls.Config, dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case strings.HasSuffix(e.Name(), ".crt"):
			pem, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("certificates: %w", err)
			}
			if cfg.RootCAs == nil {
				if cfg.RootCAs, err = x509.SystemCertPool(); err != nil {
					cfg.RootCAs = x509.NewCertPool()
				}
			}
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("certificates: %s: no PEM certificate in it", p)
			}
		case strings.HasSuffix(e.Name(), ".cert"):
			key := strings.TrimSuffix(p, ".cert") + ".key"
			cert, err := tls.LoadX509KeyPair(p, key)
			if err != nil {
				return fmt.Errorf("certificates: client certificate %s: %w", p, err)
			}
			cfg.Certificates = append(cfg.Certificates, cert)
		}
	}
	return nil
}

// httpGuard refuses plain HTTP to a registry that is not insecure:
// go-containerregistry falls back to HTTP for private addresses by itself,
// docker does not.
type httpGuard struct {
	rt       http.RoundTripper
	reg      string
	insecure bool
}

func (g *httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && req.URL.Host == g.reg && !g.insecure {
		return nil, fmt.Errorf("plain HTTP to %s refused: the registry is not insecure (use --tls-verify=false, or list it in insecure-registries of registries.conf)", g.reg)
	}
	return g.rt.RoundTrip(req)
}

// transportWithAuth wraps tr with reg's authentication for scopes (a token
// or basic auth, as the registry asks).
func transportWithAuth(ctx context.Context, reg name.Registry, auth authn.Authenticator, tr http.RoundTripper, scopes []string) (http.RoundTripper, error) {
	return transport.NewWithContext(ctx, reg, auth, tr, scopes)
}
