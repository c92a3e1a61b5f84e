package network

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// natTable is the nftables table of the bridge's outbound NAT: family ip,
// one chain postrouting with one rule per bridge subnet.
const natTable = "unionfuse"

// ErrNoNFTables says the kernel offers no nf_tables (an iptables-legacy
// host): the bridge cannot masquerade.
var ErrNoNFTables = errors.New("outbound NAT needs nftables (nf_tables), which this kernel does not offer; use --network host or none")

// masquerade makes sure that packets from subnet leaving through another
// interface than the bridge are masqueraded: it (re)writes the chain in
// one transaction, so running it for every attach is idempotent and
// repairs a flushed ruleset.
func masquerade(subnet netip.Prefix, bridge string) error {
	c, err := nftables.New()
	if err != nil {
		return natError(err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: natTable})
	ch := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	c.FlushChain(ch)
	net4 := subnet.Masked().Addr().As4()
	mask := net4
	for i := range mask {
		bits := min(max(subnet.Bits()-8*i, 0), 8)
		mask[i] = byte(0xff << (8 - bits))
	}
	ifname := make([]byte, unix.IFNAMSIZ)
	copy(ifname, bridge)
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		// ip saddr & mask == subnet
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask[:], Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net4[:]},
		// oifname != bridge
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname},
		&expr.Masq{},
	}})
	if err := c.Flush(); err != nil {
		return natError(err)
	}
	return nil
}

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
