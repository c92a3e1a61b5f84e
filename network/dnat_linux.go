package network

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Published ports of bridge containers, in the kernel. As Docker and
// CNI's portmap plugin do, a packet for a published host port is
// rewritten to the container's address and port (DNAT) before it is
// routed: in chain prerouting of the table for packets arriving from
// elsewhere, in chain output for the host's own connections. The
// runner's relay still listens on the port (it reserves it, and serves
// IPv6 and what the rules do not take), but sees no IPv4 connection.
//
// A connection from the host to 127.0.0.1 leaves, after DNAT, through
// the bridge with a loopback source, which the kernel only routes with
// route_localnet set on the bridge (Docker without its userland proxy
// does the same); rules of chain portpost masquerade it, and hairpin
// connections (a container to a published port of its own network), to
// the gateway's address, so that replies come back through the host. The
// input rule of writeRules drops new connections from the bridge to
// 127.0.0.0/8, which route_localnet would let in.
//
// Each rule carries the container's id and network in its user data
// (portTag), by which Unpublish and the reaping of dead monitors' leases
// find them.

// PortMap is one port published by DNAT.
type PortMap struct {
	HostIP        netip.Addr // invalid or unspecified: every local address
	HostPort      int
	ContainerPort int
	Proto         string // "tcp" or "udp"
}

// portTag is the user data of container id's DNAT rules on network net.
func portTag(net, id string) []byte { return []byte("unionfuse-port " + net + " " + id) }

// portChains returns the NAT chains of the published ports in t, adding
// them (when missing) to c's batch: DNAT in prerouting and output,
// masquerade in portpost (apart from writeRules' postrouting, which it
// rewrites whole).
func portChains(c *nftables.Conn, t *nftables.Table) (pre, out, post *nftables.Chain) {
	pre = c.AddChain(&nftables.Chain{
		Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest,
	})
	out = c.AddChain(&nftables.Chain{
		Name: "output", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest,
	})
	post = c.AddChain(&nftables.Chain{
		Name: "portpost", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	return pre, out, post
}

// Publish makes the kernel forward ports (those it can: IPv4 host
// addresses) to container id's address addr on b's network, replacing
// rules left for id before. Ports of an internal network are not
// published: its containers are not reachable from outside.
func (b *Bridge) Publish(id string, addr netip.Addr, ports []PortMap) error {
	n := b.net()
	if n.Internal || !addr.Is4() {
		return nil
	}
	var rules [][]expr.Any
	localnet := false
	for _, p := range ports {
		if p.HostIP.IsValid() && !p.HostIP.Is4() && !p.HostIP.IsUnspecified() {
			continue // IPv6: the relay's
		}
		m := dnatMatch(p)
		if m == nil {
			continue
		}
		localnet = localnet || !p.HostIP.IsValid() || p.HostIP.IsUnspecified() || p.HostIP.IsLoopback()
		a4 := addr.As4()
		rules = append(rules, append(m,
			&expr.Immediate{Register: 1, Data: a4[:]},
			&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, uint16(p.ContainerPort))},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true}))
	}
	if len(rules) == 0 {
		return nil
	}
	if localnet {
		if err := routeLocalnet(n.BridgeName()); err != nil {
			return err
		}
	}
	c, err := nftables.New()
	if err != nil {
		return natError(err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: natTable})
	pre, out, post := portChains(c, t)
	if err := c.Flush(); err != nil {
		return natError(err)
	}
	if err := deletePortRules(c, t, func(tag []byte) bool { return bytes.Equal(tag, portTag(n.Name, id)) }); err != nil {
		return err
	}
	a4 := addr.As4()
	notSelf := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: a4[:]},
	}
	for _, r := range rules {
		// The container's own connections to its published port
		// (hairpin through the bridge port it came in by, which
		// br_netfilter hosts do not get right) stay the relay's.
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: append(append([]expr.Any{}, notSelf...), r...), UserData: portTag(n.Name, id)})
		c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: r, UserData: portTag(n.Name, id)})
	}
	// Connections from the host's loopback, and hairpin ones, to the
	// container: replies must come back through the host.
	br := n.BridgeName()
	to := addrIn(16, netip.PrefixFrom(addr, 32))
	c.AddRule(&nftables.Rule{Table: t, Chain: post, UserData: portTag(n.Name, id), Exprs: append(append(append(
		ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), to...),
		addrIn(12, netip.MustParsePrefix("127.0.0.0/8"))...), &expr.Masq{})})
	c.AddRule(&nftables.Rule{Table: t, Chain: post, UserData: portTag(n.Name, id), Exprs: append(append(append(append(
		ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, br),
		ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, br)...), to...), ctDNAT()...), &expr.Masq{})})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("publish ports of %s: %w", id, natError(err))
	}
	return nil
}

// dnatMatch matches packets for p's host address and port; nil for a
// protocol other than tcp and udp.
func dnatMatch(p PortMap) []expr.Any {
	proto := byte(unix.IPPROTO_TCP)
	switch p.Proto {
	case "", "tcp":
	case "udp":
		proto = unix.IPPROTO_UDP
	default:
		return nil
	}
	var m []expr.Any
	if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
		a4 := p.HostIP.As4()
		m = []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a4[:]},
		}
	} else {
		// fib daddr type local: any of the host's own addresses.
		m = []expr.Any{
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
		}
	}
	return append(m,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, uint16(p.HostPort))},
	)
}

// Unpublish deletes container id's DNAT rules on b's network; none is no
// error, and neither is a host without nftables (nothing was published).
func (b *Bridge) Unpublish(id string) error {
	tag := portTag(b.net().Name, id)
	return b.unpublishWhere(func(t []byte) bool { return bytes.Equal(t, tag) })
}

// unpublishExcept deletes the DNAT rules on b's network of every
// container but those of live.
func (b *Bridge) unpublishExcept(live map[string]bool) error {
	prefix := portTag(b.net().Name, "")
	return b.unpublishWhere(func(t []byte) bool {
		id, ok := bytes.CutPrefix(t, prefix)
		return ok && !live[string(id)]
	})
}

func (b *Bridge) unpublishWhere(match func([]byte) bool) error {
	c, err := nftables.New()
	if err != nil {
		return nil
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: natTable}
	if err := deletePortRules(c, t, match); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("unpublish ports: %w", natError(err))
	}
	return nil
}

// deletePortRules adds to c's batch the deletion of the rules of the
// port chains whose user data match; missing chains hold none.
func deletePortRules(c *nftables.Conn, t *nftables.Table, match func([]byte) bool) error {
	for _, name := range []string{"prerouting", "output", "portpost"} {
		rules, err := c.GetRules(t, &nftables.Chain{Name: name, Table: t})
		if err != nil {
			if errors.Is(err, unix.ENOENT) || strings.Contains(err.Error(), "no such file") {
				continue
			}
			return fmt.Errorf("list nftables chain %s: %w", name, err)
		}
		for _, r := range rules {
			if match(r.UserData) {
				if err := c.DelRule(r); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// routeLocalnet lets the bridge route packets with a loopback source
// (connections of the host to a port published on 127.0.0.1, after DNAT).
func routeLocalnet(bridge string) error {
	p := "/proc/sys/net/ipv4/conf/" + bridge + "/route_localnet"
	if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("publish on the loopback address: %w", err)
	}
	return nil
}
