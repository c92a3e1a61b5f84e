package network

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// Name resolution on a user-defined network is by /etc/hosts kept
// current, not by an embedded DNS server (docker's 127.0.0.11): unionfuse
// has no daemon, and a resolver would need a process per network that
// outlives the containers that start it. Every attach and detach of a
// network rewrites, under the network's lease lock, one section of the
// /etc/hosts of each of its containers:
//
//	# network NAME
//	10.89.1.2	web alias 1a2b3c4d5e6f
//	# end network NAME
//
// On the default network a container's section holds its own line alone
// (docker resolves no names there). The file is rewritten in place: it
// is bind-mounted into the container, so replacing it would not be seen.

// sectionStart and sectionEnd delimit a network's lines in /etc/hosts.
func sectionStart(net string) string { return "# network " + net }
func sectionEnd(net string) string   { return "# end network " + net }

// writeHosts rewrites network net's section of the /etc/hosts of each
// container holding one of l's leases; host-gateway is hostGW.
func (l *leases) writeHosts(net string, hostGW netip.Addr) error {
	var errs []error
	for a, le := range l.Leases {
		if le.Hosts == "" {
			continue
		}
		var lines []string
		for pa, peer := range l.Leases {
			if (pa == a || net != DefaultName) && len(peer.Names) > 0 {
				lines = append(lines, pa.String()+"\t"+strings.Join(peer.Names, " "))
			}
		}
		slices.Sort(lines)
		for _, h := range le.Extra {
			if name, ip, err := ParseExtraHost(h, hostGW); err == nil {
				lines = append(lines, ip.String()+"\t"+name)
			}
		}
		if err := replaceSection(le.Hosts, net, lines); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// replaceSection replaces network net's section of the hosts file path
// with lines (appending it when missing); a missing file is left alone.
func replaceSection(path, net string, lines []string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var out []string
	in := false
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		switch {
		case line == sectionStart(net):
			in = true
		case line == sectionEnd(net):
			in = false
		case !in && line != "":
			out = append(out, line)
		}
	}
	out = append(out, sectionStart(net))
	out = append(out, lines...)
	out = append(out, sectionEnd(net))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strings.Join(out, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	return nil
}

// HostsAddr returns the address of name in a hosts file's content, for
// tests and inspect; invalid when there is none.
func HostsAddr(content, name string) netip.Addr {
	for _, line := range strings.Split(content, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && slices.Contains(f[1:], name) {
			a, _ := netip.ParseAddr(f[0])
			return a
		}
	}
	return netip.Addr{}
}
