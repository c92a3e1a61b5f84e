package network

import (
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

// Bridge is the root bridge driver (see the package doc). It needs
// CAP_NET_ADMIN in the host's network namespace: root.
type Bridge struct {
	// StateDir holds the lease file; "" is DefaultStateDir.
	StateDir string
}

var _ Driver = (*Bridge)(nil)

// ipam returns the driver's lease file.
func (b *Bridge) ipam() ipam {
	dir := b.StateDir
	if dir == "" {
		dir = DefaultStateDir
	}
	return ipam{dir: dir, name: "bridge"}
}

// HostVeth is the name of the host's end of container id's veth pair.
func HostVeth(id string) string {
	if len(id) > 12 {
		id = id[:12]
	}
	return vethPrefix + id
}

// Attach implements Driver: it leases an address, makes sure the bridge,
// forwarding and NAT are there, and connects pid's network namespace to
// the bridge through a new veth pair. It fails with one line, undoing
// what it did, when any of it cannot be done.
func (b *Bridge) Attach(id string, pid int) (*Attachment, error) {
	var att *Attachment
	err := b.ipam().locked(func(l *leases) (bool, error) {
		reclaimLinks(l.reclaim())
		br, err := ensureBridge(l)
		if err != nil {
			return true, err
		}
		if err := enableForwarding(); err != nil {
			return true, err
		}
		if err := masquerade(l.Subnet, BridgeName); err != nil {
			return true, err
		}
		addr, err := l.allocate(id, self())
		if err != nil {
			return true, err
		}
		att, err = connect(br, id, pid, netip.PrefixFrom(addr, l.Subnet.Bits()), gateway(l.Subnet))
		if err != nil {
			l.release(id)
			deleteLink(HostVeth(id))
		}
		return true, err
	})
	if err != nil {
		return nil, fmt.Errorf("network bridge: %w", err)
	}
	return att, nil
}

// Detach implements Driver: it deletes the host's end of id's veth pair
// (which takes the container's end along) and releases its address.
func (b *Bridge) Detach(id string) error {
	err := b.ipam().locked(func(l *leases) (bool, error) {
		err := deleteLink(HostVeth(id))
		return l.release(id), err
	})
	if err != nil {
		return fmt.Errorf("network bridge: detach %s: %w", HostVeth(id), err)
	}
	return nil
}

// Cleanup implements Driver: it releases the leases of dead monitors and
// deletes the veths on the bridge that no live lease owns.
func (b *Bridge) Cleanup() error {
	return b.ipam().locked(func(l *leases) (bool, error) {
		gone := l.reclaim()
		reclaimLinks(gone)
		owned := map[string]bool{}
		for _, le := range l.Leases {
			owned[HostVeth(le.ID)] = true
		}
		links, err := netlink.LinkList()
		if err != nil {
			return len(gone) > 0, err
		}
		for _, link := range links {
			name := link.Attrs().Name
			if strings.HasPrefix(name, vethPrefix) && link.Type() == "veth" && !owned[name] {
				deleteLink(name)
			}
		}
		return len(gone) > 0, nil
	})
}

// reclaimLinks deletes the host veths of leases reclaimed from dead
// monitors (normally gone already, with their network namespace).
func reclaimLinks(gone []Lease) {
	for _, le := range gone {
		deleteLink(HostVeth(le.ID))
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

// ensureBridge returns the bridge, made (with the gateway's address, up)
// when missing, and sets l.Subnet to its subnet.
func ensureBridge(l *leases) (netlink.Link, error) {
	br, err := netlink.LinkByName(BridgeName)
	if err == nil {
		addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
		if err != nil {
			return nil, err
		}
		if len(addrs) > 0 {
			p, _ := netip.AddrFromSlice(addrs[0].IP.To4())
			ones, _ := addrs[0].Mask.Size()
			l.Subnet = netip.PrefixFrom(p, ones).Masked()
			return br, upLink(br)
		}
	} else {
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeName}}); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create bridge %s: %w", BridgeName, err)
		}
		if br, err = netlink.LinkByName(BridgeName); err != nil {
			return nil, err
		}
	}
	subnet, err := pickSubnet(l.Subnet)
	if err != nil {
		return nil, err
	}
	l.Subnet = subnet
	gw := &netlink.Addr{IPNet: &net.IPNet{IP: gateway(subnet).AsSlice(), Mask: net.CIDRMask(subnet.Bits(), 32)}}
	if err := netlink.AddrAdd(br, gw); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("address bridge %s: %w", BridgeName, err)
	}
	return br, upLink(br)
}

// upLink sets link up.
func upLink(link netlink.Link) error {
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", link.Attrs().Name, err)
	}
	return nil
}

// pickSubnet returns prefer when no route of the host overlaps it, else
// the first such candidate.
func pickSubnet(prefer netip.Prefix) (netip.Prefix, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list routes: %w", err)
	}
	var used []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil || r.LinkIndex > 0 && r.LinkIndex == bridgeIndex() {
			continue
		}
		a, _ := netip.AddrFromSlice(r.Dst.IP.To4())
		if ones, _ := r.Dst.Mask.Size(); ones > 0 { // a default route overlaps everything and nothing
			used = append(used, netip.PrefixFrom(a, ones))
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

// bridgeIndex is the bridge's interface index, 0 when it is missing.
func bridgeIndex() int {
	if br, err := netlink.LinkByName(BridgeName); err == nil {
		return br.Attrs().Index
	}
	return 0
}

// macFor is the MAC address of the container with address a: 02:42 and
// the address, as Docker's.
func macFor(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// connect makes the veth pair of container id, enslaves its host end to
// br and configures its other end as eth0 in the network namespace of
// pid, with addr, loopback up and a default route through gw.
func connect(br netlink.Link, id string, pid int, addr netip.Prefix, gw netip.Addr) (*Attachment, error) {
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return nil, fmt.Errorf("the container's network namespace: %w", err)
	}
	defer ns.Close()
	host := HostVeth(id)
	deleteLink(host) // left by an earlier start whose namespace still lives
	mac := macFor(addr.Addr())
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: host, MasterIndex: br.Attrs().Index, MTU: br.Attrs().MTU},
		PeerName:         containerIf,
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
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("the container's network namespace: %w", err)
	}
	defer h.Close()
	if err := configureInside(h, addr, gw); err != nil {
		return nil, fmt.Errorf("configure the container's %s: %w", containerIf, err)
	}
	return &Attachment{
		Network: "bridge", IPAddress: addr, Gateway: gw, MacAddress: mac.String(),
		Interface: containerIf, HostVeth: host,
	}, nil
}

// configureInside sets loopback and eth0 up in the namespace of h, with
// addr on eth0 and the default route through gw.
func configureInside(h *netlink.Handle, addr netip.Prefix, gw netip.Addr) error {
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(lo); err != nil {
		return err
	}
	eth, err := h.LinkByName(containerIf)
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
	return h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw.AsSlice(), Scope: netlink.SCOPE_UNIVERSE})
}
