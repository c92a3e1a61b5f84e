package tests

// run --network bridge as root: a container reaches a server on the
// bridge's gateway (the host), two containers reach each other by
// address, resolv.conf and hosts, and nothing of a container's network
// stays after it ends, is removed or loses its monitor. No traffic leaves
// the machine: every server listens on the host's bridge address or in a
// container.

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/network"
)

// bridgeGateway runs a container on the bridge (which makes the bridge)
// and returns the gateway of its default route.
func bridgeGateway(t *testing.T, e *containerEnv) string {
	t.Helper()
	r := e.u("run", "--rm", "--network", "bridge", "busybox", "ip", "route")
	mustSucceed(t, "run --network bridge ip route", r)
	m := regexp.MustCompile(`default via (\S+) dev eth0`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no default route in the container:\n%s", r.stdout)
	}
	return m[1]
}

// hostInterfaces returns the names of the host's interfaces but those the
// network package's own tests make meanwhile.
func hostInterfaces(t *testing.T) map[string]bool {
	ents, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		if n := e.Name(); n != network.HostVeth("0123456789ab") && n != network.HostVeth("deadbeefdead") {
			out[n] = true
		}
	}
	return out
}

// leasedTo reports whether the bridge's lease file holds a lease of id.
func leasedTo(t *testing.T, id string) bool {
	b, err := os.ReadFile(filepath.Join(network.DefaultStateDir, "bridge.json"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), id)
}

func TestNetworkBridge(t *testing.T) {
	mode := requireContainers(t, false, false)
	// Each subtest has a store of its own, as TestRunner's, but they run
	// one at a time: "nothing stays" counts the host's interfaces.
	subtest := func(name string, f func(t *testing.T, e *containerEnv)) {
		t.Run(name, func(t *testing.T) { f(t, newContainerEnv(t, mode)) })
	}

	subtest("reaches a server on the gateway", func(t *testing.T, e *containerEnv) {
		gw := bridgeGateway(t, e)
		l, err := net.Listen("tcp", net.JoinHostPort(gw, "0"))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello from the host") })}
		go srv.Serve(l)
		defer srv.Close()
		expect(t, "wget the gateway", e.u("run", "--rm", "--network", "bridge", "busybox", "wget", "-qO-", "http://"+l.Addr().String()+"/"),
			0, "hello from the host", "")
	})

	subtest("resolv.conf and hosts", func(t *testing.T, e *containerEnv) {
		gw := bridgeGateway(t, e)
		r := e.u("run", "--rm", "--network", "bridge", "--hostname", "box", "--dns", "192.0.2.53", "--dns-search", "x.test",
			"--add-host", "db:10.1.2.3", "--add-host", "gw:host-gateway", "busybox", "cat", "/etc/resolv.conf", "/etc/hosts")
		mustSucceed(t, "run", r)
		for _, want := range []string{"search x.test\n", "nameserver 192.0.2.53\n", "\tbox\n", "10.1.2.3\tdb\n", gw + "\tgw\n"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("no %q in:\n%s", want, r.stdout)
			}
		}
		r = e.u("run", "--rm", "--network", "bridge", "busybox", "cat", "/etc/resolv.conf")
		if !strings.Contains(r.stdout, "nameserver ") || strings.Contains(r.stdout, "nameserver 127.") {
			t.Errorf("resolv.conf from the host's, without loopback servers:\n%s", r.stdout)
		}
	})

	subtest("two containers talk by address", func(t *testing.T, e *containerEnv) {
		out := filepath.Join(e.dir, "out")
		os.MkdirAll(out, 0o755)
		mustSucceed(t, "run -d server", e.u("run", "-d", "--name", "server", "--network", "bridge", "-v", out+":/out", "busybox", "sh", "-c",
			"ip -4 -o addr show eth0 > /out/ip; while :; do echo hi from server | nc -l -p 8080; done"))
		var ip string
		waitFor(t, func() bool {
			b, _ := os.ReadFile(filepath.Join(out, "ip"))
			m := regexp.MustCompile(`inet ([0-9.]+)/`).FindSubmatch(b)
			if m != nil {
				ip = string(m[1])
			}
			return m != nil
		})
		var r result
		waitFor(t, func() bool {
			r = e.u("run", "--rm", "--network", "bridge", "busybox", "sh", "-c", "nc -w 2 "+ip+" 8080 </dev/null")
			return r.stdout == "hi from server\n"
		})
		mustSucceed(t, "rm -f server", e.u("rm", "-f", "server"))
	})

	subtest("nothing stays", func(t *testing.T, e *containerEnv) {
		bridgeGateway(t, e) // the bridge itself stays: made before counting
		before := hostInterfaces(t)
		for i := 0; i < 10; i++ {
			mustSucceed(t, "run --rm", e.u("run", "--rm", "--network", "bridge", "busybox", "true"))
		}
		// rm -f of a running container.
		r := e.u("run", "-d", "--network", "bridge", "busybox", "sleep", "1000")
		mustSucceed(t, "run -d", r)
		id := strings.TrimSpace(r.stdout)
		if !hostInterfaces(t)[network.HostVeth(id)] || !leasedTo(t, id) {
			t.Errorf("no veth or lease for the running container %s", id[:12])
		}
		mustSucceed(t, "rm -f", e.u("rm", "-f", id))
		if leasedTo(t, id) {
			t.Errorf("%s keeps its lease after rm -f", id[:12])
		}
		// A killed monitor: the next command reaps.
		r = e.u("run", "-d", "--network", "bridge", "busybox", "sleep", "1000")
		mustSucceed(t, "run -d", r)
		id = strings.TrimSpace(r.stdout)
		syscall.Kill(parentOf(t, readState(t, e.store, id).Pid), syscall.SIGKILL)
		waitFor(t, func() bool { return strings.Contains(e.u("ps", "-a").stdout, "Exited (137)") })
		if leasedTo(t, id) {
			t.Errorf("%s keeps its lease after its monitor was killed", id[:12])
		}
		mustSucceed(t, "rm", e.u("rm", id))
		var after map[string]bool
		deadline := time.Now().Add(5 * time.Second)
		for after = hostInterfaces(t); len(after) != len(before) && time.Now().Before(deadline); after = hostInterfaces(t) {
			time.Sleep(100 * time.Millisecond)
		}
		for n := range after {
			if !before[n] {
				t.Errorf("interface %s stayed", n)
			}
		}
	})
}
