package tests

// User-defined networks of an unprivileged user with subordinate ids, as
// rootless podman's: the user's containers on its networks share one
// network namespace of the user's (a bridge per network in it, and one
// slirp4netns for the way out). They talk by name, two networks are
// isolated, the host's loopback answers at 10.0.2.2, a published port
// serves the host, and nothing of it is in the host's namespace; the
// namespace's holder and its slirp4netns end once no container is left.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
)

// netnsHolder returns, as the record of the user's rootless network
// namespace says, the pid of its holder, the /proc directory of the
// holder's thread that is in the namespace (the holder's other threads,
// its main one among them as a rule, are in the host's), and the pid of
// its slirp4netns; zeros without a record.
func (e *containerEnv) netnsHolder(t *testing.T) (holder int, nsTask string, slirp int) {
	b, err := os.ReadFile(filepath.Join(e.dir, "unionfuse", "netns.json"))
	if err != nil {
		return 0, "", 0
	}
	var rec struct {
		Holder, Slirp struct{ Pid int }
		Thread        int
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.Holder.Pid, fmt.Sprintf("/proc/%d/task/%d", rec.Holder.Pid, rec.Thread), rec.Slirp.Pid
}

// nsDevices is /proc/net/dev of the network namespace of the task whose
// /proc directory is task, "" once the task is gone.
func nsDevices(task string) string {
	b, _ := os.ReadFile(filepath.Join(task, "net", "dev"))
	return string(b)
}

// nsInterfaces counts the interfaces of the network namespace of the
// task whose /proc directory is task.
func nsInterfaces(t *testing.T, task string) int {
	b, err := os.ReadFile(filepath.Join(task, "net", "dev"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), ":") // one per interface line; the two header lines have none
}

// nsRules counts the rules of the networks' nftables table in the
// network namespace of the task whose /proc directory is task.
func nsRules(t *testing.T, task string) int {
	ns, err := os.Open(filepath.Join(task, "ns", "net"))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	tb := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: "unionfuse"}
	n := 0
	for _, name := range []string{"postrouting", "forward", "input"} {
		rules, err := c.GetRules(tb, &nftables.Chain{Name: name, Table: tb})
		if err != nil {
			t.Fatalf("nftables chain %s in the namespace of %s: %v", name, task, err)
		}
		n += len(rules)
	}
	return n
}

// rootlessLeases returns the lease files of the user's networks, one
// after another, leases sorted.
func (e *containerEnv) rootlessLeases(t *testing.T) string {
	files, _ := filepath.Glob(filepath.Join(e.dir, "unionfuse", "network", "*.json"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var l struct {
			Leases map[string]struct{ ID string }
		}
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		for a, le := range l.Leases {
			out = append(out, filepath.Base(f)+" "+a+" "+le.ID)
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// sleeper runs a detached container on network net that sleeps, and
// returns its id.
func sleeper(t *testing.T, e *containerEnv, net string) string {
	t.Helper()
	r := e.u("run", "-d", "--network", net, "busybox", "sleep", "1000")
	mustSucceed(t, "run -d", r)
	return strings.TrimSpace(r.stdout)
}

func TestNetworkUserRootlessSubIDs(t *testing.T) {
	if _, err := exec.LookPath("slirp4netns"); err != nil {
		t.Skip("needs slirp4netns (make deps installs it)")
	}
	e := newContainerEnv(t, requireContainers(t, true, true))
	openToAll(t, "/dev/net/tun") // as Debian's udev rules have it
	hostIfs := hostInterfaces(t)

	a := userNetwork(t, e)
	b := userNetwork(t, e)
	expect(t, "network ls", e.u("network", "ls", "--format", "{{.Name}}"), 0,
		strings.Join(sortedNames("bridge", a, b), "\n")+"\n", "")
	serve(t, e, a, "web", "--network-alias", "www")
	serve(t, e, b, "other")
	holder, nsTask, slirp := e.netnsHolder(t)
	if holder == 0 || !processAlive(holder) || !isSlirp(slirp) {
		t.Fatalf("rootless network namespace: holder %d, its slirp4netns %d", holder, slirp)
	}

	t.Run("talk by name and alias", func(t *testing.T) {
		expect(t, "rm a network in use", e.u("network", "rm", a), 1, "", "has active endpoints")
		for _, host := range []string{"web", "www"} {
			var r result
			waitFor(t, func() bool {
				r = e.u("run", "--rm", "--network", a, "busybox", "sh", "-c", "nc -w 2 "+host+" 8080 </dev/null")
				return r.stdout == "hi from web\n"
			})
		}
	})

	t.Run("a container of the default network (slirp4netns) connected", func(t *testing.T) {
		mustSucceed(t, "run -d", e.u("run", "-d", "--name", "def", "busybox", "sleep", "1000"))
		defer e.u("rm", "-f", "def")
		mustSucceed(t, "network connect", e.u("network", "connect", a, "def"))
		expect(t, "exec nc web", e.u("exec", "def", "sh", "-c", "nc -w 2 web 8080 </dev/null"), 0, "hi from web\n", "")
		mustSucceed(t, "network disconnect", e.u("network", "disconnect", a, "def"))
		r := e.u("exec", "def", "sh", "-c", "nc -w 2 web 8080 </dev/null; echo rc=$?")
		if strings.Contains(r.stdout, "hi from") {
			t.Errorf("disconnected, def still reaches web: %q", r.stdout)
		}
	})

	t.Run("isolated from another network", func(t *testing.T) {
		ip := strings.TrimSpace(e.u("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "other").stdout)
		if ip == "" {
			t.Fatal("no address for other")
		}
		r := e.u("run", "--rm", "--network", a, "busybox", "sh", "-c", "nc -w 2 "+ip+" 8080 </dev/null; echo rc=$?")
		if strings.Contains(r.stdout, "hi from") || !strings.Contains(r.stdout, "rc=1") {
			t.Errorf("a container of %s reached one of %s: %q %q", a, b, r.stdout, r.stderr)
		}
	})

	t.Run("reaches the host's loopback through 10.0.2.2, resolver 10.0.2.3", func(t *testing.T) {
		checkSlirpWayOut(t, e, a)
	})

	t.Run("publish", func(t *testing.T) {
		port := freePort(t)
		serve(t, e, a, "pub", "-p", fmt.Sprintf("127.0.0.1:%d:8080", port))
		waitFor(t, func() bool { return greeting(fmt.Sprintf("127.0.0.1:%d", port)) == "hi from pub\n" })
	})

	t.Run("publish UDP", func(t *testing.T) { checkUDPPublished(t, e, a) })

	t.Run("slirp4netns killed: started again, the containers keep their network", func(t *testing.T) {
		syscall.Kill(slirp, syscall.SIGKILL)
		var again int
		waitFor(t, func() bool {
			_, _, again = e.netnsHolder(t)
			return again != slirp && isSlirp(again)
		})
		if h, _, _ := e.netnsHolder(t); h != holder {
			t.Errorf("the namespace's holder changed from %d to %d", holder, h)
		}
		slirp = again
		checkSlirpWayOut(t, e, a)
		expect(t, "web still answers", e.u("run", "--rm", "--network", a, "busybox", "sh", "-c", "nc -w 2 web 8080 </dev/null"), 0, "hi from web\n", "")
	})

	t.Run("nothing in the host's namespace", func(t *testing.T) {
		for name := range hostInterfaces(t) {
			if !hostIfs[name] && strings.HasPrefix(name, "ufbr-") {
				t.Errorf("a bridge in the host's namespace: %s", name)
			}
		}
	})

	t.Run("nothing stays: stop, rm -f, a killed monitor, run/rm cycles", func(t *testing.T) {
		ifs, rules, procs := nsInterfaces(t, nsTask), nsRules(t, nsTask), processesOf(e.dir)
		leases := e.rootlessLeases(t)
		// A stopped container.
		id := sleeper(t, e, a)
		if nsInterfaces(t, nsTask) != ifs+1 || !strings.Contains(e.rootlessLeases(t), id) {
			t.Errorf("no veth or lease in the namespace for the running container %s", id[:12])
		}
		mustSucceed(t, "stop", e.u("stop", "-t", "0", id))
		if strings.Contains(e.rootlessLeases(t), id) {
			t.Errorf("%s keeps its lease after stop", id[:12])
		}
		mustSucceed(t, "rm", e.u("rm", id))
		// A killed monitor: the next command reaps.
		id = sleeper(t, e, b)
		syscall.Kill(parentOf(t, readState(t, e.store, id).Pid), syscall.SIGKILL)
		waitFor(t, func() bool { return strings.Contains(e.u("ps", "-a").stdout, "Exited (137)") })
		if strings.Contains(e.rootlessLeases(t), id) {
			t.Errorf("%s keeps its lease after its monitor was killed", id[:12])
		}
		mustSucceed(t, "rm", e.u("rm", id))
		// The command that reaps goes on in the host's namespace: a
		// container it then starts publishes its port there.
		id = sleeper(t, e, b)
		monitor := parentOf(t, readState(t, e.store, id).Pid)
		syscall.Kill(monitor, syscall.SIGKILL)
		waitFor(t, func() bool { return !processAlive(monitor) })
		port := freePort(t)
		serve(t, e, b, "after-reap", "-p", fmt.Sprintf("127.0.0.1:%d:8080", port))
		if strings.Contains(e.rootlessLeases(t), id) {
			t.Errorf("%s keeps its lease after its monitor was killed and run reaped", id[:12])
		}
		waitFor(t, func() bool { return greeting(fmt.Sprintf("127.0.0.1:%d", port)) == "hi from after-reap\n" })
		mustSucceed(t, "rm -f", e.u("rm", "-f", id, "after-reap"))
		runRmCycles(t, e, a, b)
		var after int
		waitFor(t, func() bool { after = nsInterfaces(t, nsTask); return after <= ifs })
		if r := nsRules(t, nsTask); r != rules {
			t.Errorf("nftables rules in the namespace: %d before, %d after", rules, r)
		}
		if l := e.rootlessLeases(t); l != leases {
			t.Errorf("leases before:\n%s\nafter:\n%s", leases, l)
		}
		if p := processesOf(e.dir); p > procs {
			t.Errorf("processes of the store: %d before, %d after", procs, p)
		}
	})

	t.Run("the namespace ends with its last container", func(t *testing.T) {
		mustSucceed(t, "rm -f", e.u("rm", "-f", "web", "other", "pub"))
		if !eventually(15*time.Second, func() bool { return !processAlive(holder) }) {
			t.Fatalf("the namespace's holder %d outlived the containers", holder)
		}
		if !eventually(5*time.Second, func() bool { return !isSlirp(slirp) }) {
			t.Errorf("slirp4netns %d outlived the namespace's holder", slirp)
		}
		// The next container starts a new one, and its eth0 has
		// slirp4netns's MTU, also once every port has left the bridge
		// (whose MTU then falls back to 1500 unless set on it).
		for i := range 2 {
			expect(t, fmt.Sprintf("eth0's MTU, container %d after", i+1), e.u("run", "--rm", "--network", a, "busybox", "cat", "/sys/class/net/eth0/mtu"), 0, "65520\n", "")
		}
		// network rm takes the bridge out of the namespace that runs;
		// a container of the other network keeps it running meanwhile.
		keep := sleeper(t, e, b)
		_, task, _ := e.netnsHolder(t)
		id := strings.TrimSpace(e.u("network", "inspect", "-f", "{{.Id}}", a).stdout)
		if len(id) != 64 || !strings.Contains(nsDevices(task), "ufbr-"+id[:10]) {
			t.Fatalf("network %s (%q): no bridge in the namespace of %s:\n%s", a, id, task, nsDevices(task))
		}
		mustSucceed(t, "network rm", e.u("network", "rm", a))
		if dev := nsDevices(task); dev == "" || strings.Contains(dev, "ufbr-"+id[:10]) {
			t.Errorf("network rm left its bridge in the namespace of %s, or the namespace ended with a container in it:\n%s", task, dev)
		}
		mustSucceed(t, "rm -f", e.u("rm", "-f", keep))
		expect(t, "network ls", e.u("network", "ls", "--format", "{{.Name}}"), 0, "bridge\n"+b+"\n", "")
		expect(t, "network prune -f", e.u("network", "prune", "-f"), 0, "Deleted Networks:\n"+b+"\n", "")
		expect(t, "network ls", e.u("network", "ls", "--format", "{{.Name}}"), 0, "bridge\n", "")
	})
}

// sortedNames is def then the other names in order.
func sortedNames(def string, names ...string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return append([]string{def}, out...)
}
