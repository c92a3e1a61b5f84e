package network

import (
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// needRoot skips t unless it runs as root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the bridge driver needs root")
	}
}

// sleeperInNetns starts a process in a new network namespace, killed at
// the end of t.
func sleeperInNetns(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// natTableExists reports whether the NAT table is in the ruleset.
func natTableExists(t *testing.T) bool {
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == natTable {
			return true
		}
	}
	return false
}

// dialFrom connects to addr from the network namespace of pid.
func dialFrom(t *testing.T, pid int, addr string) (net.Conn, error) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		t.Fatal(err)
	}
	defer netns.Set(orig)
	return net.DialTimeout("tcp", addr, 5*time.Second)
}

func TestBridgeAttachReachesGatewayAndDetaches(t *testing.T) {
	needRoot(t)
	b := &Bridge{}
	pid := sleeperInNetns(t)
	id := "0123456789abcdeffedcba9876543210"
	att, err := b.Attach(id, pid)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Detach(id)
	if att.Gateway != gateway(att.IPAddress) || !strings.HasPrefix(att.MacAddress, "02:42:") {
		t.Errorf("attachment %+v", att)
	}
	if !natTableExists(t) {
		t.Errorf("no nftables table %s after Attach", natTable)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(att.Gateway.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			io.WriteString(c, "hello")
			c.Close()
		}
	}()
	c, err := dialFrom(t, pid, l.Addr().String())
	if err != nil {
		t.Fatalf("dial the gateway from the container: %v", err)
	}
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "hello" {
		t.Errorf("read %q", got)
	}
	if err := b.Detach(id); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(att.HostVeth); err == nil {
		t.Errorf("%s is still there after Detach", att.HostVeth)
	}
	if err := b.Detach(id); err != nil {
		t.Errorf("second Detach: %v", err)
	}
}

func TestBridgeReclaimsTheLeaseOfADeadMonitor(t *testing.T) {
	needRoot(t)
	b := &Bridge{}
	pid := sleeperInNetns(t)
	id := "deadbeefdeadbeefdeadbeefdeadbeef"
	if _, err := b.Attach(id, pid); err != nil {
		t.Fatal(err)
	}
	// Pretend the lease's monitor died.
	b.ipam().locked(func(l *leases) (bool, error) {
		for a, le := range l.Leases {
			if le.ID == id {
				le.Owner = Owner{Pid: 1 << 30}
				l.Leases[a] = le
			}
		}
		return true, nil
	})
	if err := b.Cleanup(); err != nil {
		t.Fatal(err)
	}
	b.ipam().locked(func(l *leases) (bool, error) {
		for _, le := range l.Leases {
			if le.ID == id {
				t.Error("the dead monitor's lease was not reclaimed")
			}
		}
		return false, nil
	})
	if _, err := netlink.LinkByName(HostVeth(id)); err == nil {
		t.Error("the dead monitor's veth was not deleted")
	}
}
