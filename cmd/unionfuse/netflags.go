package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/runner"
)

// netFlags are run's network options besides --network and -p.
type netFlags struct {
	dns, dnsSearch, addHosts []string
}

// networkFlags adds docker run's --dns, --dns-search and --add-host.
func (n *netFlags) networkFlags(fset *pflag.FlagSet) {
	fset.StringArrayVar(&n.dns, "dns", nil, "a nameserver `IP` for the container's resolv.conf (network bridge)")
	fset.StringArrayVar(&n.dnsSearch, "dns-search", nil, "a search `DOMAIN` for the container's resolv.conf (network bridge)")
	fset.StringArrayVar(&n.addHosts, "add-host", nil, "add `NAME:IP` to the container's /etc/hosts (IP host-gateway: the bridge's gateway)")
}

// warnNoDefaultNetwork says on stderr when c, asking for no network, got
// none rather than the default bridge (rootless, without slirp4netns).
func warnNoDefaultNetwork(o runner.Options, c *runner.Container) {
	if o.Network == "" && c.Config.Network == "none" {
		if err := runner.DefaultNetworkUnavailable(); err != nil {
			fmt.Fprintf(os.Stderr, "WARNING: no default network (%v): the container has network none\n", err)
		}
	}
}
