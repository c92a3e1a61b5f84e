package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"golang.org/x/sys/unix"
)

// Owner is the process that holds a lease: the container's monitor. The
// start time tells a recycled pid from the owner.
type Owner struct {
	Pid   int
	Start uint64
}

// self is the calling process as an Owner.
func self() Owner {
	pid := os.Getpid()
	start, _ := daemon.StartTime(pid)
	return Owner{Pid: pid, Start: start}
}

// alive reports whether o is still running (the same process: same
// start time).
func (o Owner) alive() bool {
	if o.Pid <= 0 {
		return false
	}
	start, err := daemon.StartTime(o.Pid)
	return err == nil && (o.Start == 0 || start == o.Start)
}

// Lease is one address leased to a container.
type Lease struct {
	ID    string // the container's id
	Owner Owner
	// Names, Hosts and Extra are the Endpoint's (hosts.go).
	Names []string `json:",omitempty"`
	Hosts string   `json:",omitempty"`
	Extra []string `json:",omitempty"`
}

// leases is the IPAM file: the subnet and its leased addresses.
type leases struct {
	Subnet  netip.Prefix         // "" until the first attach picks one
	Gateway netip.Addr           `json:",omitzero"` // zero: the subnet's first address
	Leases  map[netip.Addr]Lease // by address
}

// gateway is the network's gateway address.
func (l *leases) gateway() netip.Addr {
	if l.Gateway.IsValid() {
		return l.Gateway
	}
	return gateway(l.Subnet)
}

// ipam is a lease file with its lock, both in dir.
type ipam struct {
	dir  string
	name string // bridge: bridge.json and bridge.lock
}

// ErrSubnetFull is returned when every address of the subnet is leased.
var ErrSubnetFull = errors.New("no free address left in the subnet")

// locked runs fn with the lease file read and the lock held, and writes
// the leases back when fn changed them (returns true).
func (m ipam) locked(fn func(*leases) (bool, error)) error {
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return fmt.Errorf("network state: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(m.dir, m.name+".lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("network state: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("network state: lock: %w", err)
	}
	path := filepath.Join(m.dir, m.name+".json")
	l := &leases{Leases: map[netip.Addr]Lease{}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("network state: %w", err)
	default:
		if err := json.Unmarshal(b, l); err != nil {
			return fmt.Errorf("network state: %s: %w", path, err)
		}
		if l.Leases == nil {
			l.Leases = map[netip.Addr]Lease{}
		}
	}
	changed, err := fn(l)
	if changed {
		b, merr := json.MarshalIndent(l, "", "  ")
		if merr == nil {
			merr = atomicfile.WriteFile(path, b, 0o600)
		}
		if merr != nil {
			return errors.Join(err, fmt.Errorf("network state: %w", merr))
		}
	}
	return err
}

// reclaim drops the leases whose owner is gone and returns them.
func (l *leases) reclaim() []Lease {
	var gone []Lease
	for a, le := range l.Leases {
		if !le.Owner.alive() {
			gone = append(gone, le)
			delete(l.Leases, a)
		}
	}
	return gone
}

// allocate leases want, or when it is zero the lowest free host address
// of the subnet but the gateway's, to id. A container holds one address:
// a lease it had is given up first.
func (l *leases) allocate(id string, owner Owner, want netip.Addr) (netip.Addr, error) {
	l.release(id)
	gw := l.gateway()
	first, last := l.Subnet.Masked().Addr(), lastAddr(l.Subnet)
	if want.IsValid() {
		if _, taken := l.Leases[want]; taken || want == gw {
			return netip.Addr{}, fmt.Errorf("address %s is already in use", want)
		}
		if !l.Subnet.Contains(want) || want == first || want == last {
			return netip.Addr{}, fmt.Errorf("address %s is not a host address of the network's subnet %s", want, l.Subnet)
		}
		l.Leases[want] = Lease{ID: id, Owner: owner}
		return want, nil
	}
	for a := first.Next(); a.IsValid() && a.Less(last) && l.Subnet.Contains(a); a = a.Next() {
		if _, taken := l.Leases[a]; !taken && a != gw {
			l.Leases[a] = Lease{ID: id, Owner: owner}
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%s: %w", l.Subnet, ErrSubnetFull)
}

// release drops id's lease; it reports whether there was one.
func (l *leases) release(id string) bool {
	found := false
	for a, le := range l.Leases {
		if le.ID == id {
			delete(l.Leases, a)
			found = true
		}
	}
	return found
}

// gateway is the first host address of p: the bridge's.
func gateway(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// lastAddr is the broadcast address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
