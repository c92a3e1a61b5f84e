package tests

// Mounts from the command line served by a union server (-o server=DIR):
// one process for every union under DIR, started by the first mount,
// gone once the last is unmounted; as root and as a user without root.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/testutil"
	"github.com/unionfuse/unionfuse/internal/unionserver"
	"golang.org/x/sys/unix"
)

// serverUnions makes, under root, a lower layer holding f and the upper,
// work and merged directories (u, w, m) of the unions names.
func serverUnions(t *testing.T, root string, names ...string) {
	t.Helper()
	testutil.BuildDir(t, filepath.Join(root, "lower"), []testutil.Item{{Path: "f", Kind: 'f', Data: "from the lower\n"}})
	for _, n := range names {
		for _, d := range []string{"u", "w", "m"} {
			if err := os.MkdirAll(filepath.Join(root, n, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// serversOf returns the pids of the union-server processes of uid whose
// command line names root (a server is started as `unionfuse-fuse ROOT
// SOCKET LOG`).
func serversOf(uid int, root string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name(), &st) != nil || int(st.Uid) != uid {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		// Each argument ends in a NUL; the log's may be empty.
		args := strings.Split(string(b), "\x00")
		if len(args) == 5 && args[4] == "" && args[1] == root && strings.HasSuffix(args[2], ".sock") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stopServers kills, when t ends, the union servers of uid for root that
// are still running (a failed test's), after detaching what is mounted
// under root.
func stopServers(t *testing.T, uid int, root string, merged ...string) {
	t.Cleanup(func() {
		for _, m := range merged {
			if isMounted(m) {
				t.Errorf("%s still mounted at the end of the test", m)
				unix.Unmount(m, unix.MNT_DETACH)
			}
		}
		for _, pid := range serversOf(uid, root) {
			t.Errorf("union server %d of %s still running at the end of the test", pid, root)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// TestCLIMountInUnionServer: both binaries' mount commands with -o
// server= have one union server serve their unions, which behave as a
// daemon's do; no daemon of their own runs, unmounting needs no server,
// and the server exits after the last union is gone. A mountpoint outside
// the root and the flags that need a process of the union's own are
// refused in one line.
func TestCLIMountInUnionServer(t *testing.T) {
	testutil.RequireMounts(t)
	root := testDir(t)
	serverUnions(t, root, "a", "b", "c", "t")
	a, b, c := filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "c")
	stopServers(t, 0, root, filepath.Join(a, "m"), filepath.Join(b, "m"), filepath.Join(root, "t", "m"))
	small := unionfuseBinary(t) + daemon.HelperSuffix
	lower := filepath.Join(root, "lower")

	mustOK(t, "unionfuse mount -o server=", cli(t, "mount", "-o", "server="+root, lower, a+"/u", a+"/w", a+"/m"))
	// The fuse-overlayfs form, with relative paths: the server runs in /.
	cmd := exec.Command(small, "-o", "server=.,lowerdir=lower,upperdir=b/u,workdir=b/w", "b/m")
	cmd.Dir = root
	mustOK(t, "unionfuse-fuse -o server=", run(t, cmd))

	for _, u := range []string{a, b} {
		if got := readThrough(t, u+"/m"); got != "from the lower\n" {
			t.Errorf("%s/m/f = %q", u, got)
		}
		if err := os.WriteFile(u+"/m/g", []byte(u), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(u + "/u/g"); err != nil || string(got) != u {
			t.Errorf("%s/u/g = %q, %v: a write through the union is not in its upper", u, got, err)
		}
		if rec, err := daemon.ReadPid(u + "/m"); err == nil {
			t.Errorf("a daemon of its own (%d) serves %s/m", rec.PID, u)
		}
	}
	servers := serversOf(0, root)
	if pid := serverPid(t, root); len(servers) != 1 || pid != servers[0] {
		t.Fatalf("union servers of the root: %v, pid file %d; want one", servers, pid)
	}

	outside := testDir(t)
	os.MkdirAll(outside+"/m", 0o755)
	r := cli(t, "mount", "-o", "server="+root, lower, outside+"/m")
	if r.code != 1 || !strings.Contains(r.stderr, "not below the union server's root") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("a mountpoint outside the root: exit %d, stderr %q; want 1 and one line", r.code, r.stderr)
	}
	if isMounted(outside + "/m") {
		unix.Unmount(outside+"/m", unix.MNT_DETACH)
		t.Error("mounted outside the server's root")
	}
	for _, flag := range []string{"-f", "-d", "--memprofile=" + outside + "/mem"} {
		r := run(t, exec.Command(small, flag, "-o", "server="+root+",lowerdir="+lower, root+"/b/m"))
		if r.code != 2 || !strings.Contains(r.stderr, "do not apply") {
			t.Errorf("%s with -o server: exit %d, stderr %q; want 2 (usage)", flag, r.code, r.stderr)
		}
	}

	// A busy mountpoint is refused, as by a daemon, and what is mounted
	// there stays: the server takes nothing there for a dead server's
	// union, neither its own union nor another filesystem.
	tm := filepath.Join(root, "t", "m")
	if err := unix.Mount("tmpfs", tm, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(tm+"/mine", []byte(tm), 0o644)
	for _, busy := range []struct{ merged, file, want string }{{a + "/m", "g", a}, {tm, "mine", tm}} {
		r := cli(t, "mount", "-o", "server="+root, lower, c+"/u", c+"/w", busy.merged)
		if r.code != 1 || !strings.Contains(r.stderr, "already a mount point") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("a union at the busy %s: exit %d, stderr %q; want 1 and one line", busy.merged, r.code, r.stderr)
		}
		if got, err := os.ReadFile(filepath.Join(busy.merged, busy.file)); err != nil || string(got) != busy.want {
			t.Errorf("%s/%s after the refused mount: %q, %v; want what was mounted there", busy.merged, busy.file, got, err)
		}
	}
	if err := unix.Unmount(tm, 0); err != nil {
		t.Error(err)
	}

	mustOK(t, "unionfuse umount", cli(t, "umount", a+"/m"))
	if got := readThrough(t, b+"/m"); got != "from the lower\n" {
		t.Errorf("b after a's unmount: %q", got)
	}
	if err := unix.Unmount(b+"/m", 0); err != nil {
		t.Fatal(err)
	}
	if !eventually(5*time.Second+2*unionserver.IdleExit, func() bool { return len(serversOf(0, root)) == 0 }) {
		t.Errorf("the union server still runs after its last union was unmounted")
	}
}

// TestRootlessMountInUnionServer: a user without root mounts two unions
// with -o server= (through fusermount3), writes through both and unmounts
// them; one server of theirs served both, and it is gone after.
func TestRootlessMountInUnionServer(t *testing.T) {
	testutil.RequireMounts(t)
	requireTools(t, "setpriv", "fusermount3")
	bin := unionfuseBinary(t)
	openFuseDevice(t)
	dir := worldDir(t)
	root := filepath.Join(dir, "unions")
	serverUnions(t, root, "a", "b")
	filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, nobody, nobody) })
	stopServers(t, nobody, root, root+"/a/m", root+"/b/m")
	script := strings.Join([]string{
		"set -e",
		"cd " + root,
		bin + " mount -o server=" + root + " lower a/u a/w a/m",
		bin + daemon.HelperSuffix + " -o server=" + root + ",lowerdir=lower,upperdir=b/u,workdir=b/w b/m",
		"echo a > a/m/g",
		"echo b > b/m/g",
		"cat a/m/f b/m/f > " + dir + "/read.txt",
		"grep -c ' " + root + "/[ab]/m fuse' /proc/mounts > " + dir + "/mounts.txt",
	}, "\n")
	asNobody := func(script string) *exec.Cmd {
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script)
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+dir, "HOME="+dir)
		return cmd
	}
	if out, err := asNobody(script).CombinedOutput(); err != nil {
		t.Fatalf("as uid %d: %v\n%s", nobody, err, out)
	}
	if b, _ := os.ReadFile(dir + "/read.txt"); string(b) != "from the lower\nfrom the lower\n" {
		t.Errorf("read through the unions: %q", b)
	}
	if b, _ := os.ReadFile(dir + "/mounts.txt"); strings.TrimSpace(string(b)) != "2" {
		t.Errorf("unions mounted: %q, want 2", b)
	}
	for _, u := range []string{"a", "b"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, u, "u", "g"), &st); err != nil || st.Uid != nobody {
			t.Errorf("%s/u/g: %v, owner %d; want the caller's file", u, err, st.Uid)
		}
	}
	if servers := serversOf(nobody, root); len(servers) != 1 {
		t.Fatalf("union servers of the user for the root: %v; want one", servers)
	}
	if out, err := asNobody("set -e; " + bin + " umount " + root + "/a/m; fusermount3 -u " + root + "/b/m").CombinedOutput(); err != nil {
		t.Fatalf("unmount as uid %d: %v\n%s", nobody, err, out)
	}
	if !eventually(5*time.Second+2*unionserver.IdleExit, func() bool { return len(serversOf(nobody, root)) == 0 }) {
		t.Errorf("the user's union server still runs after its last union was unmounted")
	}
}
