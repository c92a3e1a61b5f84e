package runner

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/network"
)

// Networks (run --network): "none", a network namespace of the
// container's own with loopback alone; "host", the host's;
// "container:ID", another running container's; "bridge" (the default),
// a namespace of its own attached to the root bridge by network.Bridge
// (root) or to a slirp4netns process by network.Slirp (rootless); or the
// name of a user-defined network (network.Networks: root's, or a rootless
// user's in its own namespace), attached by network.Bridge too.
// Config.Networks lists the networks of the last two kinds the container
// is on (network connect adds more), each attached from the monitor
// (attachNetworks, through startInit's setup) and detached when the
// command has ended, on rm, or by the first command that finds the
// monitor dead (reap).

// EndpointConfig is one network a container is on, with its docker
// run --network-alias and --ip.
type EndpointConfig struct {
	Network string
	Aliases []string `json:",omitempty"`
	IP      string   `json:",omitempty"`
}

// ErrRootlessNetwork says why a user-defined network cannot be had.
var ErrRootlessNetwork = errors.New("user-defined networks need root or, rootless, subordinate ids (ranges in /etc/subuid and /etc/subgid, and newuidmap): without them containers have the networks bridge (slirp4netns), none, host and container:NAME")

// Networks returns the definitions of the user-defined networks: root's
// (host-wide), or a rootless user's own, which live in the user's
// rootless network namespace (network.Namespace). A caller who is not
// root of a user namespace (rootless without subordinate ids: each
// container has a user namespace of its own) has the default network
// alone.
func Networks() network.Networks {
	switch {
	case hostRoot():
		return network.Networks{}
	case os.Geteuid() != 0:
		return network.Networks{DefaultOnly: true}
	}
	config, err := os.UserConfigDir()
	if err != nil {
		return network.Networks{DefaultOnly: true}
	}
	run := daemon.PidDir()
	ns := &network.Namespace{RunDir: run, StateDir: filepath.Join(run, "network")}
	return network.Networks{Dir: filepath.Join(config, "unionfuse", "networks"), StateDir: ns.StateDir, NS: ns}
}

// DefaultNetworkIsBridge reports whether the default network is the root
// bridge (the caller is root of the host), not slirp4netns.
func DefaultNetworkIsBridge() bool { return hostRoot() }

// userNetworks says why user-defined networks cannot be had here, nil
// when they can.
func userNetworks() error {
	if Networks().DefaultOnly {
		return ErrRootlessNetwork
	}
	return nil
}

// ownNetns reports whether the container gets a network namespace of its
// own.
func (cfg Config) ownNetns() bool {
	return cfg.Network != "host" && cfg.netContainer() == ""
}

// netContainer is the container whose network namespace cfg's joins
// (--network container:ID), "" for none.
func (cfg Config) netContainer() string {
	id, _ := strings.CutPrefix(cfg.Network, "container:")
	if id == cfg.Network {
		return ""
	}
	return id
}

// checkNetwork validates cfg's network (o's), its aliases, address and
// --dns, --dns-search and --add-host options, and fills cfg.Networks. No
// network asked for is "bridge", as docker's and podman's default, but
// "none" for a rootless container when slirp4netns cannot run here
// (DefaultNetworkUnavailable says why).
func checkNetwork(cfg *Config, o Options) error {
	switch {
	case cfg.Network == "":
		cfg.Network = network.DefaultName
		if DefaultNetworkUnavailable() != nil {
			cfg.Network = "none"
		}
	case cfg.Network == "none" || cfg.Network == "host" || cfg.Network == network.DefaultName:
	case strings.HasPrefix(cfg.Network, "container:"):
		if cfg.netContainer() == "" {
			return errors.New("invalid --network container:: give a container's name or id")
		}
	default:
		if err := userNetworks(); err != nil {
			return err
		}
		n, err := Networks().Get(cfg.Network)
		if err != nil {
			return fmt.Errorf("network %s not found", cfg.Network)
		}
		cfg.Network = n.Name
	}
	bridged := cfg.Network != "none" && cfg.Network != "host" && cfg.netContainer() == ""
	if (len(o.NetworkAliases) > 0 || o.IP != "") && (!bridged || cfg.Network == network.DefaultName) {
		return errors.New("network-scoped aliases and --ip are supported only for containers in user-defined networks")
	}
	if o.IP != "" {
		if a, err := netip.ParseAddr(o.IP); err != nil || !a.Is4() {
			return fmt.Errorf("invalid --ip %q: not an IPv4 address", o.IP)
		}
	}
	if bridged {
		cfg.Networks = []EndpointConfig{{Network: cfg.Network, Aliases: o.NetworkAliases, IP: o.IP}}
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

// DefaultNetworkUnavailable says why a container that asks for no network
// gets "none" rather than "bridge": rootless, slirp4netns cannot run
// (not installed, or /dev/net/tun closed to the caller). Nil as root.
func DefaultNetworkUnavailable() error {
	if hostRoot() {
		return nil
	}
	return network.SlirpUsable()
}

// driverFor returns the driver of network name for c: for the default
// network, the root bridge as root and slirp4netns otherwise.
func driverFor(c *Container, name string) (network.Driver, error) {
	defs := Networks()
	switch {
	case name == network.DefaultName && !hostRoot():
		return &network.Slirp{StateDir: c.dir}, nil
	case name == network.DefaultName:
		return defs.Bridge(network.Default()), nil
	case defs.DefaultOnly:
		return nil, ErrRootlessNetwork
	}
	n, err := defs.Get(name)
	if err != nil {
		return nil, err
	}
	return defs.Bridge(n), nil
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

// attachNetworks attaches the network namespace of the container's init
// pid to each of the container's networks (eth0, eth1... in order) and
// writes its /etc/resolv.conf (and with slirp4netns its /etc/hosts) for
// the first. On error nothing stays attached.
func attachNetworks(c *Container, pid int) ([]*network.Attachment, error) {
	var out []*network.Attachment
	for i, ep := range c.Config.Networks {
		att, err := attachEndpoint(c, ep, pid, fmt.Sprintf("eth%d", i), network.Owner{})
		if err != nil {
			detachNetworks(c)
			return nil, err
		}
		out = append(out, att)
	}
	if len(out) > 0 {
		if err := writeNetworkFiles(c, out[0]); err != nil {
			detachNetworks(c)
			return nil, err
		}
	}
	return out, nil
}

// attachEndpoint attaches pid's network namespace to network ep as
// interface ifname, the lease held by owner (zero: this process).
func attachEndpoint(c *Container, ep EndpointConfig, pid int, ifname string, owner network.Owner) (*network.Attachment, error) {
	d, err := driverFor(c, ep.Network)
	if err != nil {
		return nil, err
	}
	br, ok := d.(*network.Bridge)
	if !ok {
		return d.Attach(c.ID, pid)
	}
	e := network.Endpoint{ContainerID: c.ID, Interface: ifname, Hosts: filepath.Join(c.dir, "hosts"), Owner: owner}
	if ep.Network == network.DefaultName {
		e.Names = []string{c.Config.Hostname}
	} else {
		e.Names = slices.Compact(append(append([]string{c.Name}, ep.Aliases...), c.ID[:12], c.Config.Hostname))
	}
	if ifname == "eth0" {
		e.ExtraHosts = c.Config.ExtraHosts
	}
	if ep.IP != "" {
		e.IP, _ = netip.ParseAddr(ep.IP)
	}
	att, err := br.AttachEndpoint(e, pid)
	if err == nil {
		att.Aliases = ep.Aliases
	}
	return att, err
}

// detachNetworks undoes attachNetworks; nothing to undo is no error.
func detachNetworks(c *Container) error {
	var errs []error
	for _, ep := range c.Config.Networks {
		if d, err := driverFor(c, ep.Network); err == nil {
			errs = append(errs, d.Detach(c.ID))
		}
	}
	return errors.Join(errs...)
}

// writeNetworkFiles writes the container's /etc/resolv.conf (the host's,
// see network.ResolvConf) for a container attached as att and, when the
// network does not keep it (slirp4netns), its /etc/hosts: its address
// with its hostname and --add-host's.
func writeNetworkFiles(c *Container, att *network.Attachment) error {
	hostConf, _ := os.ReadFile("/etc/resolv.conf")
	dns := c.Config.DNS
	if len(dns) == 0 && att.Nameserver.IsValid() {
		dns = []string{att.Nameserver.String()}
	}
	files := map[string]string{"resolv.conf": string(network.ResolvConf(hostConf, dns, c.Config.DNSSearch))}
	if att.HostVeth == "" {
		files["hosts"] = localhostLines + att.IPAddress.Addr().String() + "\t" + c.Config.Hostname + "\n" + extraHosts(c, att.Gateway)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(c.dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// localhostLines start every container's /etc/hosts.
const localhostLines = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

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
