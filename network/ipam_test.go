package network

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
)

// allocateIn leases an address of subnet to id in m, as Attach does.
func allocateIn(m ipam, subnet netip.Prefix, id string, o Owner) (netip.Addr, error) {
	var a netip.Addr
	err := m.locked(func(l *leases) (bool, error) {
		if !l.Subnet.IsValid() {
			l.Subnet = subnet
		}
		l.reclaim()
		var err error
		a, err = l.allocate(id, o, netip.Addr{})
		return true, err
	})
	return a, err
}

func TestIPAMConcurrentAllocationsAreUnique(t *testing.T) {
	m := ipam{dir: t.TempDir(), name: "bridge"}
	subnet := netip.MustParsePrefix("10.89.0.0/24")
	var mu sync.Mutex
	seen := map[netip.Addr]string{}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("c%02d", i)
			a, err := allocateIn(m, subnet, id, self())
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if other, dup := seen[a]; dup {
				t.Errorf("%s leased to %s and %s", a, other, id)
			}
			seen[a] = id
		}()
	}
	wg.Wait()
	if len(seen) != 50 {
		t.Fatalf("%d addresses for 50 containers", len(seen))
	}
	if _, ok := seen[netip.MustParseAddr("10.89.0.1")]; ok {
		t.Error("the gateway's address was leased")
	}
}

func TestIPAMReclaimsDeadOwnersAndReleases(t *testing.T) {
	m := ipam{dir: t.TempDir(), name: "bridge"}
	subnet := netip.MustParsePrefix("10.89.0.0/30") // one host address besides the gateway
	dead := Owner{Pid: 1 << 30}
	a, err := allocateIn(m, subnet, "dead", dead)
	if err != nil || a != netip.MustParseAddr("10.89.0.2") {
		t.Fatalf("first lease: %v %v", a, err)
	}
	// The dead owner's lease is reclaimed for the next container.
	b, err := allocateIn(m, subnet, "live", self())
	if err != nil || b != a {
		t.Fatalf("after reclaim: %v %v", b, err)
	}
	if _, err := allocateIn(m, subnet, "third", self()); !errors.Is(err, ErrSubnetFull) {
		t.Fatalf("full subnet: %v", err)
	}
	m.locked(func(l *leases) (bool, error) { return l.release("live"), nil })
	if c, err := allocateIn(m, subnet, "third", self()); err != nil || c != a {
		t.Fatalf("after release: %v %v", c, err)
	}
}

func TestLastAddr(t *testing.T) {
	for p, want := range map[string]string{"10.89.0.0/24": "10.89.0.255", "10.89.4.0/22": "10.89.7.255", "10.0.0.0/30": "10.0.0.3"} {
		if got := lastAddr(netip.MustParsePrefix(p)).String(); got != want {
			t.Errorf("lastAddr(%s) = %s, want %s", p, got, want)
		}
	}
}
