package network

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"strings"
)

// DefaultDNS are the nameservers a container gets when the host has only
// loopback ones (a local resolver the container cannot reach): Docker's
// fallback.
var DefaultDNS = []string{"8.8.8.8", "8.8.4.4"}

// ResolvConf returns a container's /etc/resolv.conf made from the host's
// (hostConf), as Docker does for its bridge: nameservers on loopback are
// dropped (DefaultDNS when none is left); dns, when given, replaces the
// nameservers and search (docker --dns-search; "." alone: none) the
// search domains. Other lines (options) are kept.
func ResolvConf(hostConf []byte, dns, search []string) []byte {
	var servers, domains, rest []string
	sc := bufio.NewScanner(bytes.NewReader(hostConf))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || line[0] == '#' || line[0] == ';':
		case f[0] == "nameserver" && len(f) > 1:
			if a, err := netip.ParseAddr(f[1]); err == nil && !a.IsLoopback() {
				servers = append(servers, f[1])
			}
		case (f[0] == "search" || f[0] == "domain") && len(f) > 1:
			domains = f[1:]
		default:
			rest = append(rest, line)
		}
	}
	if len(dns) > 0 {
		servers = dns
	}
	if len(servers) == 0 {
		servers = DefaultDNS
	}
	if len(search) > 0 {
		domains = search
		if len(search) == 1 && search[0] == "." {
			domains = nil
		}
	}
	var b strings.Builder
	if len(domains) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(domains, " "))
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	for _, l := range rest {
		fmt.Fprintln(&b, l)
	}
	return []byte(b.String())
}

// HostGateway is the address docker --add-host NAME:host-gateway means.
const HostGateway = "host-gateway"

// ParseExtraHost reads docker --add-host's NAME:IP (or NAME=IP); the IP
// host-gateway stands for gw (invalid: not allowed).
func ParseExtraHost(s string, gw netip.Addr) (name string, ip netip.Addr, err error) {
	i := strings.IndexAny(s, ":=")
	if i <= 0 {
		return "", netip.Addr{}, fmt.Errorf("invalid --add-host %q: want NAME:IP", s)
	}
	name, addr := s[:i], strings.Trim(s[i+1:], "[]")
	if addr == HostGateway {
		if !gw.IsValid() {
			return "", netip.Addr{}, fmt.Errorf("invalid --add-host %q: this network has no gateway", s)
		}
		return name, gw, nil
	}
	ip, err = netip.ParseAddr(addr)
	if err != nil {
		return "", netip.Addr{}, fmt.Errorf("invalid --add-host %q: %q is not an IP address", s, addr)
	}
	return name, ip, nil
}
