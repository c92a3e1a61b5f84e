package main

import "github.com/spf13/pflag"

// netFlags are run's network options besides --network and -p.
type netFlags struct {
	dns, dnsSearch, addHosts, aliases []string
	ip                                string
}

// networkFlags adds docker run's --dns, --dns-search and --add-host.
func (n *netFlags) networkFlags(fset *pflag.FlagSet) {
	fset.StringArrayVar(&n.dns, "dns", nil, "a nameserver `IP` for the container's resolv.conf (network bridge)")
	fset.StringArrayVar(&n.dnsSearch, "dns-search", nil, "a search `DOMAIN` for the container's resolv.conf (network bridge)")
	fset.StringArrayVar(&n.addHosts, "add-host", nil, "add `NAME:IP` to the container's /etc/hosts (IP host-gateway: the bridge's gateway)")
}
