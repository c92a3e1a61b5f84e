package tests

// User-defined networks as root: containers on one network talk by name
// and alias, containers on two networks cannot reach each other,
// --network container: shares a namespace, inspect shows the addresses;
// bad input fails with one line; concurrent runs get distinct addresses;
// and 100 run/rm cycles leave no interface, nftables rule or process
// behind. Networks have names of the test's own (other checkouts test
// at the same time on this host).

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
)

// userNetwork creates a network with a name of t's own and removes it at
// the end of t.
func userNetwork(t *testing.T, e *containerEnv, args ...string) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	mustSucceed(t, "network create", e.u(append(append([]string{"network", "create"}, args...), name)...))
	t.Cleanup(func() {
		if r := e.u("ps", "-aq"); r.stdout != "" {
			e.u(append([]string{"rm", "-f"}, strings.Fields(r.stdout)...)...)
		}
		e.u("network", "rm", name)
	})
	return name
}

// serve runs a detached container on network net named name, answering
// every connection to its port 8080 with "hi from NAME".
func serve(t *testing.T, e *containerEnv, net, name string, extra ...string) {
	t.Helper()
	args := append([]string{"run", "-d", "--name", name, "--network", net}, extra...)
	args = append(args, "busybox", "sh", "-c", "while :; do echo hi from "+name+" | nc -l -p 8080; done")
	mustSucceed(t, "run -d "+name, e.u(args...))
}

// nftRules counts the rules of the networks' nftables table.
func nftRules(t *testing.T) int {
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, _ := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	n := 0
	for _, tb := range tables {
		if tb.Name != "unionfuse" {
			continue
		}
		chains, _ := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
		for _, ch := range chains {
			if ch.Table.Name == tb.Name {
				rules, _ := c.GetRules(tb, ch)
				n += len(rules)
			}
		}
	}
	return n
}

// portRules counts the published-port rules (DNAT and their masquerade)
// of container id in the networks' nftables table.
func portRules(t *testing.T, id string) int {
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tb := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: "unionfuse"}
	n := 0
	for _, name := range []string{"prerouting", "output", "portpost"} {
		rules, _ := c.GetRules(tb, &nftables.Chain{Name: name, Table: tb})
		for _, r := range rules {
			if strings.HasSuffix(string(r.UserData), " "+id) {
				n++
			}
		}
	}
	return n
}

// processesOf counts the processes whose command line or environment
// names dir (the env's store and its containers).
func processesOf(dir string) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		for _, f := range []string{"cmdline", "environ"} {
			b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), f))
			if strings.Contains(string(b), dir) {
				n++
				break
			}
		}
	}
	return n
}

// runRmCycles runs 100 containers with --rm (20 with -short), in
// batches of 5 at once (bounded in time, and concurrent), alternating
// between networks a and b.
func runRmCycles(t *testing.T, e *containerEnv, a, b string) {
	t.Helper()
	cycles := 100
	if testing.Short() {
		cycles = 20
	}
	for i := 0; i < cycles; i += 5 {
		var wg sync.WaitGroup
		out := make([]result, 5)
		for j := range out {
			wg.Add(1)
			go func() {
				defer wg.Done()
				net := a
				if j%2 == 0 {
					net = b
				}
				out[j] = e.u("run", "--rm", "--network", net, "busybox", "true")
			}()
		}
		wg.Wait()
		for _, r := range out {
			mustSucceed(t, "run --rm", r)
		}
	}
}

func TestNetworkUser(t *testing.T) {
	mode := requireContainers(t, false, false)
	subtest := func(name string, f func(t *testing.T, e *containerEnv)) {
		t.Run(name, func(t *testing.T) { f(t, newContainerEnv(t, mode)) })
	}

	subtest("talk by name and alias, isolated from another network", func(t *testing.T, e *containerEnv) {
		a := userNetwork(t, e)
		b := userNetwork(t, e)
		serve(t, e, a, "web", "--network-alias", "www")
		serve(t, e, b, "other")
		for _, host := range []string{"web", "www"} {
			var r result
			waitFor(t, func() bool {
				r = e.u("run", "--rm", "--network", a, "busybox", "sh", "-c", "nc -w 2 "+host+" 8080 </dev/null")
				return r.stdout == "hi from web\n"
			})
		}
		ins := e.u("inspect", "-f", "{{json .NetworkSettings}}", "other")
		mustSucceed(t, "inspect", ins)
		var ns struct {
			IPAddress string
			Networks  map[string]struct{ IPAddress, Gateway, MacAddress, NetworkID string }
		}
		if err := json.Unmarshal([]byte(ins.stdout), &ns); err != nil || ns.IPAddress == "" || ns.Networks[b].IPAddress != ns.IPAddress ||
			ns.Networks[b].Gateway == "" || !strings.HasPrefix(ns.Networks[b].MacAddress, "02:42:") || len(ns.Networks[b].NetworkID) != 64 {
			t.Fatalf("NetworkSettings %s (%v)", ins.stdout, err)
		}
		r := e.u("run", "--rm", "--network", a, "busybox", "sh", "-c", "nc -w 2 "+ns.IPAddress+" 8080 </dev/null; echo rc=$?")
		if strings.Contains(r.stdout, "hi from") || !strings.Contains(r.stdout, "rc=1") {
			t.Errorf("a container of %s reached one of %s: %q %q", a, b, r.stdout, r.stderr)
		}
		expect(t, "resolve other from a", e.u("run", "--rm", "--network", a, "busybox", "grep", "-c", "other", "/etc/hosts"), 1, "0\n", "")
		// connect puts it on a: now it resolves and answers there.
		mustSucceed(t, "network connect", e.u("network", "connect", a, "other"))
		waitFor(t, func() bool {
			r = e.u("run", "--rm", "--network", a, "busybox", "sh", "-c", "nc -w 2 other 8080 </dev/null")
			return r.stdout == "hi from other\n"
		})
		mustSucceed(t, "network disconnect", e.u("network", "disconnect", a, "other"))
		expect(t, "rm a network in use", e.u("network", "rm", a), 1, "", "has active endpoints")
		// --network container: sees web's interfaces and answers on its loopback.
		expect(t, "container:web", e.u("run", "--rm", "--network", "container:web", "busybox", "sh", "-c", "nc -w 2 127.0.0.1 8080 </dev/null"),
			0, "hi from web\n", "")
	})

	subtest("bad input", func(t *testing.T, e *containerEnv) {
		expect(t, "unknown network", e.u("run", "--rm", "--network", "no-such-net-x", "busybox", "true"), 125, "", "network no-such-net-x not found")
		a := userNetwork(t, e, "--subnet", "10.89.201.0/30")
		expect(t, "subnet overlap", e.u("network", "create", "--subnet", "10.89.201.0/24", "overlapping-x"), 1, "", "overlaps 10.89.201.0/30")
		expect(t, "name taken", e.u("network", "create", a), 1, "", "already exists")
		expect(t, "alias on the default", e.u("run", "--rm", "--network-alias", "x", "busybox", "true"), 125, "", "user-defined networks")
		// A /30 has one address besides the gateway.
		mustSucceed(t, "run -d", e.u("run", "-d", "--network", a, "busybox", "sleep", "1000"))
		expect(t, "exhausted subnet", e.u("run", "--rm", "--network", a, "busybox", "true"), 125, "", "no free address left in the subnet")
		expect(t, "--ip taken", e.u("run", "--rm", "--network", a, "--ip", "10.89.201.2", "busybox", "true"), 125, "", "already in use")
		r := e.u("run", "-d", "-p", "127.0.0.1::80", "busybox", "sleep", "1000")
		mustSucceed(t, "run -d -p", r)
		port := strings.TrimSpace(e.u("port", strings.TrimSpace(r.stdout), "80").stdout)
		expect(t, "port taken", e.u("run", "--rm", "-p", port+":80", "busybox", "true"), 125, "", "already taken")
	})

	subtest("concurrent runs get distinct addresses", func(t *testing.T, e *containerEnv) {
		a := userNetwork(t, e)
		var wg sync.WaitGroup
		out := make([]result, 8)
		for i := range out {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i] = e.u("run", "--rm", "--network", a, "busybox", "sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}'; sleep 1")
			}()
		}
		wg.Wait()
		seen := map[string]bool{}
		for _, r := range out {
			mustSucceed(t, "run", r)
			if seen[r.stdout] {
				t.Errorf("address %s given twice", strings.TrimSpace(r.stdout))
			}
			seen[r.stdout] = true
		}
	})

	subtest("100 run/rm cycles leave nothing", func(t *testing.T, e *containerEnv) {
		a := userNetwork(t, e)
		mustSucceed(t, "first run", e.u("run", "--rm", "--network", a, "busybox", "true"))
		mustSucceed(t, "first run", e.u("run", "--rm", "busybox", "true"))
		ifs, rules, procs := len(hostInterfaces(t)), nftRules(t), processesOf(e.dir)
		runRmCycles(t, e, a, "bridge")
		var after int
		waitFor(t, func() bool { after = len(hostInterfaces(t)); return after <= ifs })
		if r := nftRules(t); r > rules {
			t.Errorf("nftables rules: %d before, %d after", rules, r)
		}
		if p := processesOf(e.dir); p > procs {
			t.Errorf("processes of the store: %d before, %d after", procs, p)
		}
	})
}

// Without root and without subordinate ids (each container has a user
// namespace of its own, so no namespace can hold a bridge for several),
// user-defined networks are refused with one line; the default network
// stays.
func TestNetworkUserRootless(t *testing.T) {
	e := newContainerEnv(t, requireContainers(t, true, false))
	expect(t, "network create", e.u("network", "create", "rootless-x"), 1, "", "user-defined networks need root or, rootless, subordinate ids")
	expect(t, "run --network NAME", e.u("run", "--rm", "--network", "some-net", "busybox", "true"), 125, "", "user-defined networks need root or, rootless, subordinate ids")
	r := e.u("network", "ls", "--format", "{{.Name}} {{.Driver}}")
	expect(t, "network ls", r, 0, "bridge bridge\n", "")
}
