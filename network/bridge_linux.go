package network

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The root bridge network's names and defaults (see the package doc).
const (
	BridgeName      = "unionfuse0"
	DefaultStateDir = "/run/unionfuse/network"
	vethPrefix      = "uf"   // + 12 hex digits of the container id: 14 of IFNAMSIZ-1
	containerIf     = "eth0" // the container's end
)

// subnetCandidates are the subnets the bridge may take, in order: the
// first that no route of the host overlaps.
func subnetCandidates() []netip.Prefix {
	var out []netip.Prefix
	for b := 89; b <= 99; b++ {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(b), 0, 0}), 24))
	}
	return out
}

// Bridge is the root bridge driver (see the package doc) of one network:
// the default one (Net nil) or a user-defined one. It needs
// CAP_NET_ADMIN in the host's network namespace: root.
type Bridge struct {
	// StateDir holds the lease files; "" is DefaultStateDir.
	StateDir string
	// Net is the network; nil is the default one.
	Net *Config
	// Defs are the definitions of the user-defined networks, whose
	// bridges the nftables rules keep apart.
	Defs Networks
	// NS, when not nil, is the rootless namespace the network lives in
	// (its bridge, veths and rules); nil is the caller's, the host's.
	NS *Namespace
}

var _ Driver = (*Bridge)(nil)

// Endpoint is what a container asks of a network beyond its id.
type Endpoint struct {
	ContainerID string
	// Interface is its name inside the container: "" is eth0.
	Interface string
	// IP, when valid, is the address asked for (run --ip).
	IP netip.Addr
	// Names are resolved to the container's address in the /etc/hosts
	// of every container on the network (on the default network: its
	// own alone).
	Names []string
	// Hosts is the container's /etc/hosts; "" keeps it out of the
	// network's name resolution.
	Hosts string
	// ExtraHosts are its --add-host entries, written with its own line
	// (host-gateway is the network's gateway).
	ExtraHosts []string
	// Owner holds the lease; zero is the calling process.
	Owner Owner
}

func (b *Bridge) net() *Config {
	if b.Net == nil {
		return Default()
	}
	return b.Net
}

// ipam returns the network's lease file.
func (b *Bridge) ipam() ipam {
	dir := b.StateDir
	if dir == "" {
		dir = DefaultStateDir
	}
	if n := b.net(); n.Name != DefaultName {
		return ipam{dir: dir, name: "net-" + n.ID[:12]}
	}
	return ipam{dir: dir, name: "bridge"}
}

// HostVeth is the name of the host's end of container id's veth pair on
// the default network.
func HostVeth(id string) string {
	if len(id) > 12 {
		id = id[:12]
	}
	return vethPrefix + id
}

// hostVeth is the host's end of container id's veth on b's network: on
// a user-defined network, 12 hex digits of a hash of both ids.
func (b *Bridge) hostVeth(id string) string {
	n := b.net()
	if n.Name == DefaultName {
		return HostVeth(id)
	}
	h := sha256.Sum256([]byte(n.ID + id))
	return vethPrefix + hex.EncodeToString(h[:6])
}

// Attach implements Driver for the container's first interface.
func (b *Bridge) Attach(id string, pid int) (*Attachment, error) {
	return b.AttachEndpoint(Endpoint{ContainerID: id}, pid)
}

// AttachEndpoint leases an address, makes sure the bridge, forwarding
// and the nftables rules are there, connects pid's network namespace to
// the bridge through a new veth pair, and rewrites the /etc/hosts of the
// network's containers. It fails with one line, undoing what it did,
// when any of it cannot be done.
func (b *Bridge) AttachEndpoint(ep Endpoint, pid int) (*Attachment, error) {
	if ep.Interface == "" {
		ep.Interface = containerIf
	}
	if ep.Owner == (Owner{}) {
		ep.Owner = self()
	}
	n := b.net()
	id := ep.ContainerID
	var att *Attachment
	err := b.NS.do(true, func() error {
		return b.ipam().locked(func(l *leases) (bool, error) {
			b.reclaimLinks(l.reclaim())
			br, err := b.ensureBridge(l)
			if err != nil {
				return true, err
			}
			if err := enableForwarding(); err != nil {
				return true, err
			}
			if err := b.applyRules(l.Subnet); err != nil {
				return true, err
			}
			addr, err := l.allocate(id, ep.Owner, ep.IP)
			if err != nil {
				return true, err
			}
			le := l.Leases[addr]
			le.Names, le.Hosts, le.Extra = ep.Names, ep.Hosts, ep.ExtraHosts
			l.Leases[addr] = le
			gw := l.gateway()
			att, err = connect(br, b.hostVeth(id), ep.Interface, pid, netip.PrefixFrom(addr, l.Subnet.Bits()), gw)
			if err != nil {
				l.release(id)
				deleteLink(b.hostVeth(id))
				return true, err
			}
			att.Network, att.NetworkID = n.Name, n.ID
			if b.NS != nil {
				att.Nameserver = slirpNameserver
			}
			return true, l.writeHosts(n.Name, b.hostGateway(l))
		})
	})
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", n.Name, err)
	}
	return att, nil
}

// Detach implements Driver: it deletes the host's end of id's veth pair
// (which takes the container's end along), releases its address and
// takes it out of the other containers' /etc/hosts.
func (b *Bridge) Detach(id string) error {
	err := b.NS.do(false, func() error {
		return b.ipam().locked(func(l *leases) (bool, error) {
			err := errors.Join(deleteLink(b.hostVeth(id)), b.Unpublish(id))
			if !l.release(id) {
				return false, err
			}
			return true, errors.Join(err, l.writeHosts(b.net().Name, b.hostGateway(l)))
		})
	})
	if err != nil {
		return fmt.Errorf("network %s: detach %s: %w", b.net().Name, b.hostVeth(id), err)
	}
	return nil
}

// InUse returns the ids of the containers holding an address of the
// network (their monitors alive).
func (b *Bridge) InUse() ([]string, error) {
	var ids []string
	err := b.NS.do(false, func() error {
		return b.ipam().locked(func(l *leases) (bool, error) {
			gone := l.reclaim()
			b.reclaimLinks(gone)
			for _, le := range l.Leases {
				ids = append(ids, le.ID)
			}
			return len(gone) > 0, nil
		})
	})
	return ids, err
}

// Leases returns the network's leases by address, after reclaiming the
// dead ones.
func (b *Bridge) Leases() (map[netip.Addr]Lease, netip.Prefix, error) {
	var out map[netip.Addr]Lease
	var subnet netip.Prefix
	err := b.NS.do(false, func() error {
		return b.ipam().locked(func(l *leases) (bool, error) {
			gone := l.reclaim()
			b.reclaimLinks(gone)
			out, subnet = l.Leases, l.Subnet
			return len(gone) > 0, nil
		})
	})
	return out, subnet, err
}

// Cleanup implements Driver: it releases the leases of dead monitors and
// deletes the veths on the bridge that no live lease owns.
func (b *Bridge) Cleanup() error {
	return b.NS.do(false, func() error {
		return b.ipam().locked(func(l *leases) (bool, error) {
			gone := l.reclaim()
			b.reclaimLinks(gone)
			owned := map[string]bool{}
			live := map[string]bool{}
			for _, le := range l.Leases {
				owned[b.hostVeth(le.ID)] = true
				live[le.ID] = true
			}
			b.unpublishExcept(live)
			br, err := netlink.LinkByName(b.net().BridgeName())
			if err != nil {
				return len(gone) > 0, nil // no bridge, nothing on it
			}
			links, err := netlink.LinkList()
			if err != nil {
				return len(gone) > 0, err
			}
			for _, link := range links {
				name := link.Attrs().Name
				if strings.HasPrefix(name, vethPrefix) && link.Type() == "veth" && link.Attrs().MasterIndex == br.Attrs().Index && !owned[name] {
					deleteLink(name)
				}
			}
			if len(gone) > 0 {
				err = l.writeHosts(b.net().Name, b.hostGateway(l))
			}
			return len(gone) > 0, err
		})
	})
}

// hostGateway is the address at which the network's containers reach
// the host (--add-host NAME:host-gateway): the bridge's own address as
// root, slirp4netns's gateway in the rootless namespace.
func (b *Bridge) hostGateway(l *leases) netip.Addr {
	if b.NS != nil {
		return slirpGateway
	}
	return l.gateway()
}

// reclaimLinks deletes the host veths of leases reclaimed from dead
// monitors (normally gone already, with their network namespace).
func (b *Bridge) reclaimLinks(gone []Lease) {
	for _, le := range gone {
		deleteLink(b.hostVeth(le.ID))
		b.Unpublish(le.ID)
	}
}

// deleteLink deletes the interface name; one that does not exist is no
// error.
func deleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// ensureBridge returns the network's bridge, made (with the gateway's
// address, up) when missing, and sets l.Subnet and l.Gateway to its
// subnet and gateway. The default network's subnet is the one its bridge
// has, else the first free candidate; a user-defined one's is fixed.
func (b *Bridge) ensureBridge(l *leases) (netlink.Link, error) {
	n := b.net()
	name := n.BridgeName()
	if n.Name != DefaultName {
		l.Subnet, l.Gateway = n.Subnet, n.Gateway
	}
	br, err := netlink.LinkByName(name)
	if err == nil {
		addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
		if err != nil {
			return nil, err
		}
		if len(addrs) > 0 {
			if n.Name == DefaultName {
				p, _ := netip.AddrFromSlice(addrs[0].IP.To4())
				ones, _ := addrs[0].Mask.Size()
				l.Subnet = netip.PrefixFrom(p, ones).Masked()
			}
			return b.upWithMTU(br)
		}
	} else {
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create bridge %s: %w", name, err)
		}
		if br, err = netlink.LinkByName(name); err != nil {
			return nil, err
		}
	}
	if n.Name == DefaultName {
		subnet, err := b.pickSubnet(l.Subnet)
		if err != nil {
			return nil, err
		}
		l.Subnet = subnet
	}
	gw := &netlink.Addr{IPNet: &net.IPNet{IP: l.gateway().AsSlice(), Mask: net.CIDRMask(l.Subnet.Bits(), 32)}}
	if err := netlink.AddrAdd(br, gw); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("address bridge %s: %w", name, err)
	}
	return b.upWithMTU(br)
}

// upWithMTU sets the bridge up, with b.mtu() when that is not the
// kernel's default. Set at creation alone, a bridge's MTU falls back to
// 1500 when its last port leaves; set on the bridge afterwards, it stays.
// Its veths take its MTU (connect).
func (b *Bridge) upWithMTU(br netlink.Link) (netlink.Link, error) {
	if m := b.mtu(); m != 0 && br.Attrs().MTU != m {
		if err := netlink.LinkSetMTU(br, m); err != nil {
			return nil, fmt.Errorf("MTU of %s: %w", br.Attrs().Name, err)
		}
		br.Attrs().MTU = m
	}
	return br, upLink(br)
}

// mtu is the MTU of a new bridge (and so of its veths): the kernel's
// default (0) as root; slirp4netns's in the rootless namespace, whose
// way out is slirp4netns, so that containers' segments reach it whole.
func (b *Bridge) mtu() int {
	if b.NS != nil {
		return slirpMTU
	}
	return 0
}

// upLink sets link up.
func upLink(link netlink.Link) error {
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", link.Attrs().Name, err)
	}
	return nil
}

// hostRoutes are the destinations of the host's IPv4 routes but the
// default route and those of the default network's bridge.
func hostRoutes() ([]netip.Prefix, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var used []netip.Prefix
	brIndex := bridgeIndex()
	for _, r := range routes {
		if r.Dst == nil || r.LinkIndex > 0 && r.LinkIndex == brIndex {
			continue
		}
		a, _ := netip.AddrFromSlice(r.Dst.IP.To4())
		if ones, _ := r.Dst.Mask.Size(); ones > 0 { // a default route overlaps everything and nothing
			used = append(used, netip.PrefixFrom(a, ones).Masked())
		}
	}
	return used, nil
}

// pickSubnet returns prefer when no route of the host and no user-defined
// network overlaps it, else the first such candidate.
func (b *Bridge) pickSubnet(prefer netip.Prefix) (netip.Prefix, error) {
	used, err := hostRoutes()
	if err != nil {
		return netip.Prefix{}, err
	}
	if nets, err := b.Defs.List(); err == nil {
		for _, n := range nets {
			if n.Subnet.IsValid() && n.Name != DefaultName {
				used = append(used, n.Subnet)
			}
		}
	}
	free := func(p netip.Prefix) bool {
		for _, u := range used {
			if u.Overlaps(p) {
				return false
			}
		}
		return true
	}
	cands := subnetCandidates()
	if prefer.IsValid() {
		cands = append([]netip.Prefix{prefer}, cands...)
	}
	for _, p := range cands {
		if free(p) {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("every candidate subnet (10.89-99.0.0/24) overlaps a route of the host")
}

// bridgeIndex is the default bridge's interface index, 0 when it is
// missing.
func bridgeIndex() int {
	if br, err := netlink.LinkByName(BridgeName); err == nil {
		return br.Attrs().Index
	}
	return 0
}

// MacAddress is the MAC address of the container with address a on a
// bridge (macFor's).
func MacAddress(a netip.Addr) string { return macFor(a).String() }

// macFor is the MAC address of the container with address a: 02:42 and
// the address, as Docker's.
func macFor(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// connect makes the veth pair of container id, enslaves its host end to
// br and configures its other end as eth0 in the network namespace of
// pid, with addr, loopback up and a default route through gw.
func connect(br netlink.Link, host, ifname string, pid int, addr netip.Prefix, gw netip.Addr) (*Attachment, error) {
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return nil, fmt.Errorf("the container's network namespace: %w", err)
	}
	defer ns.Close()
	deleteLink(host) // left by an earlier start whose namespace still lives
	mac := macFor(addr.Addr())
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: host, MasterIndex: br.Attrs().Index, MTU: br.Attrs().MTU},
		PeerName:         ifname,
		PeerNamespace:    netlink.NsFd(int(ns)),
		PeerHardwareAddr: mac,
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("create veth %s: %w", host, err)
	}
	hostLink, err := netlink.LinkByName(host)
	if err != nil {
		return nil, err
	}
	if err := upLink(hostLink); err != nil {
		return nil, err
	}
	// Hairpin: a container reaching its own published port through the
	// host (DNAT, dnat_linux.go) gets its packets back on its own port.
	if err := netlink.LinkSetHairpin(hostLink, true); err != nil {
		return nil, fmt.Errorf("hairpin mode on %s: %w", host, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("the container's network namespace: %w", err)
	}
	defer h.Close()
	if err := configureInside(h, ifname, addr, gw); err != nil {
		return nil, fmt.Errorf("configure the container's %s: %w", ifname, err)
	}
	return &Attachment{
		IPAddress: addr, Gateway: gw, MacAddress: mac.String(),
		Interface: ifname, HostVeth: host,
	}, nil
}

// configureInside sets loopback and ifname up in the namespace of h, with
// addr on ifname and, for eth0 (the first network), the default route
// through gw.
func configureInside(h *netlink.Handle, ifname string, addr netip.Prefix, gw netip.Addr) error {
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(lo); err != nil {
		return err
	}
	eth, err := h.LinkByName(ifname)
	if err != nil {
		return err
	}
	ipnet := &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}
	if err := h.AddrAdd(eth, &netlink.Addr{IPNet: ipnet}); err != nil {
		return err
	}
	if err := h.LinkSetUp(eth); err != nil {
		return err
	}
	if ifname != containerIf {
		return nil
	}
	err = h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw.AsSlice(), Scope: netlink.SCOPE_UNIVERSE})
	if errors.Is(err, unix.EEXIST) {
		return nil // the default route is slirp4netns's (a rootless container connected to a network)
	}
	return err
}
