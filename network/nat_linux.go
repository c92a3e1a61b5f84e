package network

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// natTable is the nftables table of the networks: family ip, chain
// postrouting (outbound NAT) and chains forward and input (isolation),
// see writeRules; chains prerouting and output (published ports), see
// dnat_linux.go.
const natTable = "unionfuse"

// ErrNoNFTables says the kernel offers no nf_tables (an iptables-legacy
// host): the bridge cannot masquerade.
var ErrNoNFTables = errors.New("outbound NAT needs nftables (nf_tables), which this kernel does not offer; use --network host or none")

// applyRules (re)writes the nftables table of every network's rules in
// one transaction, for the networks as they are now with this one's
// subnet being subnet: running it for every attach is idempotent and
// repairs a flushed ruleset.
func (b *Bridge) applyRules(subnet netip.Prefix) error {
	nets, err := b.Defs.List()
	if err != nil {
		return err
	}
	for _, n := range nets {
		switch {
		case n.Name == b.net().Name:
			n.Subnet = subnet
		case n.Name == DefaultName:
			n.Subnet = (&Bridge{StateDir: b.StateDir}).subnetNow()
		}
	}
	return writeRules(nets)
}

// subnetNow is the subnet in the network's lease file (read without its
// lock: the file is replaced whole), zero before the first attach.
func (b *Bridge) subnetNow() netip.Prefix {
	var l leases
	data, err := os.ReadFile(filepath.Join(b.ipam().dir, b.ipam().name+".json"))
	if err == nil && json.Unmarshal(data, &l) == nil {
		return l.Subnet
	}
	return netip.Prefix{}
}

// writeRules writes the table: in chain postrouting, packets from a
// network's subnet leaving through another interface than its bridge are
// masqueraded (but an internal network's); in chain forward, packets
// between two networks' bridges are dropped, and so are packets into or
// out of an internal network's bridge from or to any other interface.
func writeRules(nets []*Config) error {
	c, err := nftables.New()
	if err != nil {
		return natError(err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: natTable})
	post := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	fwd := c.AddChain(&nftables.Chain{
		Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter,
	})
	in := c.AddChain(&nftables.Chain{
		Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter,
	})
	portChains(c, t)
	c.FlushChain(post)
	c.FlushChain(fwd)
	c.FlushChain(in)
	for _, n := range nets {
		if !n.Subnet.IsValid() {
			continue
		}
		br := n.BridgeName()
		// route_localnet (dnat_linux.go) must not open the host's
		// loopback to the containers: new connections to it from the
		// bridge are dropped (replies to the host's own are not new).
		c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: append(append(append(
			ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, br),
			addrIn(16, netip.MustParsePrefix("127.0.0.0/8"))...), ctNew()...), drop())})
		if !n.Internal {
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: append(append(saddrIn(n.Subnet),
				ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br)...), &expr.Masq{})})
			for _, o := range nets {
				if o.Subnet.IsValid() && o.Name != n.Name {
					c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: append(append(
						ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, br),
						ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, o.BridgeName())...), drop())})
				}
			}
			continue
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: append(append(
			ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, br),
			ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br)...), drop())})
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: append(append(
			ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, br),
			ifname(expr.MetaKeyIIFNAME, expr.CmpOpNeq, br)...), drop())})
	}
	if err := c.Flush(); err != nil {
		return natError(err)
	}
	return nil
}

// saddrIn matches packets from subnet: ip saddr & mask == subnet.
func saddrIn(subnet netip.Prefix) []expr.Any { return addrIn(12, subnet) }

// ctDNAT matches packets of connections whose destination was rewritten:
// ct status dnat.
func ctDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, 0x20), Xor: make([]byte, 4)}, // IPS_DST_NAT
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// ctNew matches packets that open a connection: ct state new.
func ctNew() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, expr.CtStateBitNEW), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// addrIn matches the IPv4 address at offset (12 source, 16 destination)
// of the network header against subnet: addr & mask == subnet.
func addrIn(offset uint32, subnet netip.Prefix) []expr.Any {
	net4 := subnet.Masked().Addr().As4()
	mask := net4
	for i := range mask {
		bits := min(max(subnet.Bits()-8*i, 0), 8)
		mask[i] = byte(0xff << (8 - bits))
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask[:], Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net4[:]},
	}
}

// ifname matches the input or output interface's name (key) against name.
func ifname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: b}}
}

// drop is the verdict drop.
func drop() *expr.Verdict { return &expr.Verdict{Kind: expr.VerdictDrop} }

// natError turns the error of a kernel without nf_tables into
// ErrNoNFTables: no nfnetlink at all fails the socket, no nf_tables
// subsystem behind it fails the batch with EOPNOTSUPP.
func natError(err error) error {
	if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EOPNOTSUPP) {
		return ErrNoNFTables
	}
	return fmt.Errorf("nftables: %w", err)
}

// enableForwarding turns on IPv4 forwarding (as Docker does): the
// containers' packets are routed out through the host.
func enableForwarding() error {
	const p = "/proc/sys/net/ipv4/ip_forward"
	if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	return nil
}
