package runner

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/unionfuse/unionfuse/network"
)

// Networks (run --network): "none", a network namespace of the
// container's own with loopback alone; "host", the host's; "bridge", a
// namespace of its own attached to the root bridge by network.Bridge
// (root) or to a slirp4netns process by network.Slirp (rootless) from
// the monitor (attachNetwork, through startInit's setup) and
// detached when the command has ended, on rm, or by the first command
// that finds the monitor dead (reap).

// ownNetns reports whether the container gets a network namespace of its
// own.
func (cfg Config) ownNetns() bool { return cfg.Network != "host" }

// checkNetwork validates cfg's network and its --dns, --dns-search and
// --add-host options. No network asked for is "bridge", as docker's and
// podman's default, but "none" for a rootless container when slirp4netns
// cannot run here (DefaultNetworkUnavailable says why).
func checkNetwork(cfg *Config) error {
	switch cfg.Network {
	case "":
		cfg.Network = "bridge"
		if DefaultNetworkUnavailable() != nil {
			cfg.Network = "none"
		}
	case "none", "host":
	case "bridge":
	default:
		return fmt.Errorf("network %q is not supported: use --network none, host or bridge", cfg.Network)
	}
	for _, d := range cfg.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			return fmt.Errorf("invalid --dns %q: not an IP address", d)
		}
	}
	for _, h := range cfg.ExtraHosts {
		// Any valid address stands for the gateway here.
		if _, _, err := network.ParseExtraHost(h, netip.IPv4Unspecified()); err != nil {
			return err
		}
	}
	return nil
}

// driverFor returns the driver of c's network, nil for none and host:
// for bridge, the root bridge as root and slirp4netns otherwise.
func driverFor(c *Container) network.Driver {
	switch {
	case c.Config.Network != "bridge":
		return nil
	case !hostRoot():
		return &network.Slirp{StateDir: c.dir}
	default:
		return &network.Bridge{}
	}
}

// DefaultNetworkUnavailable says why a container that asks for no network
// gets "none" rather than "bridge": rootless, slirp4netns cannot run
// (not installed, or /dev/net/tun closed to the caller). Nil as root.
func DefaultNetworkUnavailable() error {
	if hostRoot() {
		return nil
	}
	return network.SlirpUsable()
}

// hostRoot reports whether this process is root of the host's user
// namespace, not the caller's root inside a rootless one (userns.go).
func hostRoot() bool {
	if os.Geteuid() != 0 {
		return false
	}
	b, err := os.ReadFile("/proc/self/uid_map")
	return err == nil && strings.Join(strings.Fields(string(b)), " ") == "0 0 4294967295"
}

// attachNetwork attaches the network namespace of the container's init
// pid to the container's network and writes its /etc/hosts and
// /etc/resolv.conf for the address it got. None and host attach nothing
// (nil).
func attachNetwork(c *Container, pid int) (*network.Attachment, error) {
	d := driverFor(c)
	if d == nil {
		return nil, nil
	}
	att, err := d.Attach(c.ID, pid)
	if err != nil {
		return nil, err
	}
	if err := writeNetworkFiles(c, att); err != nil {
		d.Detach(c.ID)
		return nil, err
	}
	return att, nil
}

// detachNetwork undoes attachNetwork; nothing to undo is no error.
func detachNetwork(c *Container) error {
	if d := driverFor(c); d != nil {
		return d.Detach(c.ID)
	}
	return nil
}

// writeNetworkFiles writes the container's /etc/hosts (its address with
// its hostname, --add-host's) and /etc/resolv.conf (the host's, see
// network.ResolvConf) for a container attached as att.
func writeNetworkFiles(c *Container, att *network.Attachment) error {
	hostConf, _ := os.ReadFile("/etc/resolv.conf")
	dns := c.Config.DNS
	if len(dns) == 0 && att.Nameserver.IsValid() {
		dns = []string{att.Nameserver.String()}
	}
	resolv := network.ResolvConf(hostConf, dns, c.Config.DNSSearch)
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		att.IPAddress.Addr().String() + "\t" + c.Config.Hostname + "\n" + extraHosts(c, att.Gateway)
	for name, content := range map[string]string{"hosts": hosts, "resolv.conf": string(resolv)} {
		if err := os.WriteFile(filepath.Join(c.dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// extraHosts returns the /etc/hosts lines of --add-host, with gw for
// host-gateway (checked at create).
func extraHosts(c *Container, gw netip.Addr) string {
	var b strings.Builder
	for _, h := range c.Config.ExtraHosts {
		if name, ip, err := network.ParseExtraHost(h, gw); err == nil {
			fmt.Fprintf(&b, "%s\t%s\n", ip, name)
		}
	}
	return b.String()
}
