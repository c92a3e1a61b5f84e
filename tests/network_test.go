package tests

// run --network bridge as root: a container reaches a server on the
// bridge's gateway (the host), two containers reach each other by
// address, resolv.conf and hosts, and nothing of a container's network
// stays after it ends, is removed or loses its monitor. No traffic leaves
// the machine: every server listens on the host's bridge address or in a
// container.

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
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

	subtest("published ports by DNAT", func(t *testing.T, e *containerEnv) {
		gw := bridgeGateway(t, e) // a host address: the output chain's DNAT
		free := func() int {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			return l.Addr().(*net.TCPAddr).Port
		}
		lo, all := free(), free()
		// The server answers with its connections: the peer shows the
		// path (the relay connects from the container's 127.0.0.1, DNAT
		// keeps the host's address or masquerades to the gateway).
		r := e.u("run", "-d", "--name", "pub", "--network", "bridge", "-p", fmt.Sprintf("127.0.0.1:%d:8080", lo), "-p", fmt.Sprintf("%d:8080", all),
			"busybox", "sh", "-c", "while :; do nc -l -p 8080 -e netstat -tn; done")
		mustSucceed(t, "run -d -p", r)
		ask := func(addr string) string {
			var out string
			waitFor(t, func() bool {
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					return false
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				b, _ := io.ReadAll(c)
				out = string(b)
				return strings.Contains(out, ":8080")
			})
			return out
		}
		for _, c := range []struct{ addr, peer string }{
			{fmt.Sprintf("127.0.0.1:%d", lo), gw},  // masqueraded loopback
			{fmt.Sprintf("127.0.0.1:%d", all), gw}, // all addresses include it
			{net.JoinHostPort(gw, strconv.Itoa(all)), gw},
		} {
			out := ask(c.addr)
			if !regexp.MustCompile(`\S+:8080\s+\S*` + regexp.QuoteMeta(c.peer) + `:\d+`).MatchString(out) {
				t.Errorf("%s: the container did not see a connection from %s (not DNAT):\n%s", c.addr, c.peer, out)
			}
		}
		// Another container through the host's address, and the
		// container itself (through the relay).
		r = e.u("run", "--rm", "--network", "bridge", "busybox", "sh", "-c", fmt.Sprintf("nc -w 5 %s %d </dev/null", gw, all))
		if mustSucceed(t, "run nc", r); !strings.Contains(r.stdout, ":8080") {
			t.Errorf("another container got no answer:\n%s", r.stdout)
		}
		var self []string
		r = result{}
		for i := 0; i < 3 && !strings.Contains(r.stdout, ":8080"); i++ {
			r = e.u("exec", "pub", "sh", "-c", fmt.Sprintf("nc -w 5 %s %d </dev/null", gw, all))
			self = append(self, fmt.Sprintf("exit %d: %s%s", r.code, r.stdout, r.stderr))
		}
		if !strings.Contains(r.stdout, ":8080") {
			t.Errorf("the container itself got no answer:\n%s", strings.Join(self, "\n"))
		} else if len(self) > 1 {
			t.Logf("the container itself got its answer at attempt %d: %s", len(self), strings.Join(self, "\n"))
		}
		mustSucceed(t, "rm -f", e.u("rm", "-f", "pub"))
	})

	subtest("publish UDP", func(t *testing.T, e *containerEnv) { checkUDPPublished(t, e, "bridge") })

	subtest("nothing stays", func(t *testing.T, e *containerEnv) {
		bridgeGateway(t, e) // the bridge itself stays: made before counting
		before := hostInterfaces(t)
		for i := 0; i < 10; i++ {
			mustSucceed(t, "run --rm", e.u("run", "--rm", "--network", "bridge", "busybox", "true"))
		}
		// rm -f of a running container, with published ports (DNAT
		// rules: 2 per port and 2 masquerade).
		r := e.u("run", "-d", "--network", "bridge", "-p", "127.0.0.1::8080", "-p", "8081/udp", "busybox", "sleep", "1000")
		mustSucceed(t, "run -d", r)
		id := strings.TrimSpace(r.stdout)
		if !hostInterfaces(t)[network.HostVeth(id)] || !leasedTo(t, id) {
			t.Errorf("no veth or lease for the running container %s", id[:12])
		}
		if n := portRules(t, id); n != 6 {
			t.Errorf("%d published-port rules for the running container %s, want 6", n, id[:12])
		}
		mustSucceed(t, "rm -f", e.u("rm", "-f", id))
		if leasedTo(t, id) {
			t.Errorf("%s keeps its lease after rm -f", id[:12])
		}
		if n := portRules(t, id); n != 0 {
			t.Errorf("%s keeps %d published-port rules after rm -f", id[:12], n)
		}
		// A stopped container.
		r = e.u("run", "-d", "--network", "bridge", "-p", "8080", "busybox", "sleep", "1000")
		mustSucceed(t, "run -d", r)
		id = strings.TrimSpace(r.stdout)
		mustSucceed(t, "stop", e.u("stop", "-t", "0", id))
		if n := portRules(t, id); n != 0 {
			t.Errorf("%s keeps %d published-port rules after stop", id[:12], n)
		}
		mustSucceed(t, "rm", e.u("rm", id))
		// A killed monitor: the next command reaps.
		r = e.u("run", "-d", "--network", "bridge", "-p", "8080", "busybox", "sleep", "1000")
		mustSucceed(t, "run -d", r)
		id = strings.TrimSpace(r.stdout)
		if n := portRules(t, id); n != 4 {
			t.Errorf("%d published-port rules for the running container %s, want 4", n, id[:12])
		}
		syscall.Kill(parentOf(t, readState(t, e.store, id).Pid), syscall.SIGKILL)
		waitFor(t, func() bool { return strings.Contains(e.u("ps", "-a").stdout, "Exited (137)") })
		if leasedTo(t, id) {
			t.Errorf("%s keeps its lease after its monitor was killed", id[:12])
		}
		if n := portRules(t, id); n != 0 {
			t.Errorf("%s keeps %d published-port rules after its monitor was killed", id[:12], n)
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
