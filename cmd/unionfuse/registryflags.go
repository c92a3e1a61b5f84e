package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/registry"
)

// registryFlags are the flags of the commands that talk to a registry.
type registryFlags struct {
	fset      *pflag.FlagSet
	tlsVerify bool
	certDir   string
	authFile  string
}

// add registers them on fset.
func (rf *registryFlags) add(fset *pflag.FlagSet) {
	rf.fset = fset
	fset.BoolVar(&rf.tlsVerify, "tls-verify", true, "require HTTPS and verify certificates; false allows plain HTTP and unverified TLS (unset: allowed only for localhost, 127.0.0.0/8 and the insecure-registries of registries.conf)")
	fset.StringVar(&rf.certDir, "cert-dir", "", "use the certificates in `DIR` (*.crt CAs, *.cert + *.key client) instead of /etc/containers/certs.d/HOST and /etc/docker/certs.d/HOST")
	fset.StringVar(&rf.authFile, "authfile", "", "read credentials from `FILE` first (default: $REGISTRY_AUTH_FILE, ~/.docker/config.json, containers' auth.json)")
}

// options returns the registry options the flags ask for, with the
// insecure registries of the configuration files (registry.ConfigFiles).
func (rf *registryFlags) options() (registry.Options, error) {
	insecure, err := registry.LoadInsecureRegistries(registry.ConfigFiles())
	if err != nil {
		return registry.Options{}, err
	}
	return registry.Options{Insecure: !rf.tlsVerify, Verify: rf.tlsVerify && rf.fset != nil && rf.fset.Changed("tls-verify"),
		InsecureRegistries: insecure, CertDir: rf.certDir, AuthFile: rf.authFile, UserAgent: "unionfuse/" + version}, nil
}

// failRegistry prints err; an interrupted command exits exitInterrupted,
// as a shell reports Ctrl-C.
func failRegistry(ctx context.Context, err error) int {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "unionfuse: interrupted: nothing partial was stored")
		return exitInterrupted
	}
	return fail(err)
}
