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
	"testing"
	"time"
)

// netnsHolder returns the pids of the holder of the user's rootless
// network namespace and of its slirp4netns as its record says, zeros
// without a record.
func (e *containerEnv) netnsHolder(t *testing.T) (holder, slirp int) {
	b, err := os.ReadFile(filepath.Join(e.dir, "unionfuse", "netns.json"))
	if err != nil {
		return 0, 0
	}
	var rec struct{ Holder, Slirp struct{ Pid int } }
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.Holder.Pid, rec.Slirp.Pid
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
	holder, slirp := e.netnsHolder(t)
	if holder == 0 || !processAlive(holder) || !isSlirp(slirp) {
		t.Fatalf("rootless network namespace: holder %d, its slirp4netns %d", holder, slirp)
	}

	t.Run("talk by name and alias", func(t *testing.T) {
		for _, host := range []string{"web", "www"} {
			var r result
			waitFor(t, func() bool {
				r = e.u("run", "--rm", "--network", a, "busybox", "sh", "-c", "nc -w 2 "+host+" 8080 </dev/null")
				return r.stdout == "hi from web\n"
			})
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

	t.Run("nothing in the host's namespace", func(t *testing.T) {
		for name := range hostInterfaces(t) {
			if !hostIfs[name] && strings.HasPrefix(name, "ufbr-") {
				t.Errorf("a bridge in the host's namespace: %s", name)
			}
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
		// The next container starts a new one.
		mustSucceed(t, "run after", e.u("run", "--rm", "--network", a, "busybox", "true"))
	})
}

// sortedNames is def then the other names in order.
func sortedNames(def string, names ...string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return append([]string{def}, out...)
}
