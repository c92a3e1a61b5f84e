package tests

// The union server (internal/unionserver): one process serving the
// unions of one root for its clients (the snapshotter), started by the
// first client, shared by the next, surviving its clients, replaced when
// killed, and gone once it serves nothing and nobody is connected.

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/fs"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/mountinfo"
	"github.com/unionfuse/unionfuse/internal/partial"
	"github.com/unionfuse/unionfuse/internal/unionserver"
	"golang.org/x/sys/unix"
)

// unionServerRoot makes a root for a union server with one lower layer
// holding the file f, and returns it with the config of a union whose
// upper and work are named by name.
func unionServerRoot(t *testing.T) (root string, union func(name string) (merged string, cfg fs.Config)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounts FUSE as root")
	}
	root = filepath.Join(testDir(t), "root")
	lower := filepath.Join(root, "lower")
	if err := os.MkdirAll(lower, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "f"), []byte("from the lower"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, func(name string) (string, fs.Config) {
		dir := filepath.Join(root, name)
		for _, d := range []string{"upper", "work", "merged"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return filepath.Join(dir, "merged"), fs.Config{Lowers: []string{lower}, Upper: filepath.Join(dir, "upper"), Work: filepath.Join(dir, "work")}
	}
}

// serverPid returns the pid of the union server of root, 0 when none
// listens.
func serverPid(t *testing.T, root string) int {
	t.Helper()
	b, err := os.ReadFile(unionserver.PidFile(root))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// readThrough reads merged/f.
func readThrough(t *testing.T, merged string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(merged, "f"))
	if err != nil {
		t.Fatalf("read through the union at %s: %v", merged, err)
	}
	return string(b)
}

func TestUnionServer(t *testing.T) {
	root, union := unionServerRoot(t)
	bin := unionfuseBinary(t) + daemon.HelperSuffix
	log := filepath.Join(root, "unions.log")
	c1 := unionserver.NewClient(root, log, bin)
	defer c1.Close()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("unions.log:\n%s", lastLines(string(b), 30))
		}
	})

	a, cfgA := union("a")
	cfgA.MaxNodes = 2048 // small bounds: the memory limit's cap (below)
	defer unionserver.Detach(a)
	if err := c1.Mount(a, cfgA); err != nil {
		t.Fatal(err)
	}
	if got := readThrough(t, a); got != "from the lower" {
		t.Fatalf("read %q", got)
	}
	pid := serverPid(t, root)
	if pid <= 0 || !processAlive(pid) {
		t.Fatalf("no union server runs (pid file: %d)", pid)
	}
	// Asked twice, the same union stays: nothing is stacked on it.
	if err := os.WriteFile(filepath.Join(a, "g"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c1.Mount(a, cfgA); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(a, "g")); err != nil || string(b) != "kept" {
		t.Fatalf("after a second mount request: %q, %v", b, err)
	}
	if below, _ := mountinfo.Below(root); len(below) != 1 {
		t.Errorf("mounts under the root after two requests for one union: %v", below)
	}
	// Outside the root, also through a symbolic link below it: refused.
	elsewhere := testDir(t)
	if err := c1.Mount(filepath.Join(elsewhere, "merged"), cfgA); err == nil || !strings.Contains(err.Error(), "not below") {
		t.Errorf("a mountpoint outside the root: %v", err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := c1.Mount(filepath.Join(root, "link", "merged"), cfgA); err == nil || !strings.Contains(err.Error(), "not below") {
		t.Errorf("a mountpoint outside the root through a link below it: %v", err)
	}
	// A lazily pulled lower (its partial/blob mark beside it): refused,
	// as the server has no fetcher for its missing data.
	mark := filepath.Join(root, partial.DirName, partial.BlobName)
	if err := os.MkdirAll(filepath.Dir(mark), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mark, []byte("sha256:0"), 0o644); err != nil {
		t.Fatal(err)
	}
	lazy, cfgLazy := union("lazy")
	if err := c1.Mount(lazy, cfgLazy); err == nil || !strings.Contains(err.Error(), "pulled lazily") {
		t.Errorf("a union on a partial layer: %v", err)
		unionserver.Detach(lazy)
	}
	os.RemoveAll(filepath.Dir(mark))

	// A second client shares the server, and the server outlives the
	// first client.
	c2 := unionserver.NewClient(root, log, bin)
	defer c2.Close()
	b, cfgB := union("b")
	cfgB.MaxNodes = 2048
	defer unionserver.Detach(b)
	if err := c2.Mount(b, cfgB); err != nil {
		t.Fatal(err)
	}
	if again := serverPid(t, root); again != pid {
		t.Errorf("a second client got server %d, the first %d", again, pid)
	}
	// The server's soft memory limit follows its unions: the nodes they
	// hold and room for more, at most the sum of their bounds, which is
	// what two small unions that hold next to nothing are given.
	limitA, limitB := loggedLimit(t, log, "mounted "+a), loggedLimit(t, log, "mounted "+b)
	if limitA <= 0 || limitB <= limitA {
		t.Errorf("memory limit with one union %d MiB, with two %d MiB: want it to grow", limitA, limitB)
	}
	c1.Close()
	c2.Close()
	time.Sleep(2 * unionserver.IdleExit)
	if !processAlive(pid) || readThrough(t, b) != "from the lower" {
		t.Fatal("the union server stopped serving when its clients hung up")
	}

	// Killed, its unions die (ECONNABORTED); a mount request at the same
	// mountpoint replaces the dead union, in a new server.
	syscall.Kill(pid, syscall.SIGKILL)
	if !eventually(5*time.Second, func() bool { return !processAlive(pid) }) {
		t.Fatal("the union server outlived SIGKILL")
	}
	// The kernel answers ENOTCONN or ECONNABORTED for the aborted
	// connection, and now and then EIO (seen once in CI), depending on
	// where the walk meets it; a dead union never answers a stat.
	if _, err := os.Stat(filepath.Join(a, "f")); !errors.Is(err, unix.ENOTCONN) && !errors.Is(err, unix.ECONNABORTED) && !errors.Is(err, unix.EIO) {
		t.Errorf("a union of a killed server: stat %v, want ENOTCONN, ECONNABORTED or EIO", err)
	}
	if err := c1.Mount(a, cfgA); err != nil {
		t.Fatalf("mount over a dead union: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(a, "g")); err != nil || string(b) != "kept" {
		t.Errorf("the new union shows the old one's upper: %q, %v", b, err)
	}
	pid2 := serverPid(t, root)
	if pid2 == pid || !processAlive(pid2) {
		t.Fatalf("after the kill: server %d (killed %d)", pid2, pid)
	}

	// Detach (what Commit and Remove do), dead union included: then the
	// server has nothing to serve and, with no client, exits.
	for _, m := range []string{a, b} {
		if err := unionserver.Detach(m); err != nil {
			t.Errorf("detach %s: %v", m, err)
		}
	}
	c1.Close()
	if below, _ := mountinfo.Below(root); len(below) != 0 {
		t.Errorf("mounted after detaching: %v", below)
	}
	if !eventually(5*time.Second, func() bool { return !processAlive(pid2) }) {
		t.Errorf("the union server %d runs on with no union and no client", pid2)
		syscall.Kill(pid2, syscall.SIGKILL)
	}
	if _, err := os.Stat(unionserver.PidFile(root)); !os.IsNotExist(err) {
		t.Errorf("the server's lock file after it exited: %v", err)
	}
}

// loggedLimit returns the memory limit, in MiB, of the last line of the
// union server's log with what: "... mounted /x (memory limit 20 MiB)";
// -1 for "none" or no such line.
func loggedLimit(t *testing.T, log, what string) int {
	t.Helper()
	b, _ := os.ReadFile(log)
	limit := -1
	for _, line := range strings.Split(string(b), "\n") {
		_, rest, ok := strings.Cut(line, " "+what+" (memory limit ")
		if !ok {
			continue
		}
		limit = -1
		if n, err := strconv.Atoi(strings.TrimSuffix(rest, " MiB)")); err == nil {
			limit = n
		}
	}
	return limit
}

// openInServedUnion has a union server started for a fresh root serve
// the union "a" and opens a/f in it; it returns the root, the client, the
// union's mountpoint and config, the open file and the server's pid. The
// file, the union and the client are closed when t ends.
func openInServedUnion(t *testing.T) (root string, c *unionserver.Client, a string, cfg fs.Config, f *os.File, pid int) {
	t.Helper()
	root, union := unionServerRoot(t)
	c = unionserver.NewClient(root, filepath.Join(root, "unions.log"), unionfuseBinary(t)+daemon.HelperSuffix)
	t.Cleanup(func() { c.Close() })
	a, cfg = union("a")
	t.Cleanup(func() { unionserver.Detach(a) })
	if err := c.Mount(a, cfg); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(a, "f"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return root, c, a, cfg, f, serverPid(t, root)
}

// TestUnionServerStops sends SIGTERM to a union server: it stops
// listening, detaches its unions, and exits once their users have left.
func TestUnionServerStops(t *testing.T) {
	root, _, _, _, f, pid := openInServedUnion(t)
	syscall.Kill(pid, syscall.SIGTERM)
	if !eventually(5*time.Second, func() bool { below, _ := mountinfo.Below(root); return len(below) == 0 }) {
		t.Fatal("the union is still mounted after SIGTERM")
	}
	buf := make([]byte, 64)
	if n, err := f.Read(buf); err != nil || string(buf[:n]) != "from the lower" {
		t.Errorf("a file open in the detached union: %q, %v", buf[:n], err)
	}
	if !processAlive(pid) {
		t.Error("the server exited while a file of its union was open")
	}
	f.Close()
	if !eventually(5*time.Second, func() bool { return !processAlive(pid) }) {
		t.Errorf("the union server %d runs on after SIGTERM and its last user", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// TestUnionServerKeepsDetachedUnions detaches a union whose file is open
// (lazily, as a removal while in use does) and mounts a new one at its
// mountpoint: the server, with no client and nothing at its mountpoints
// any more, keeps serving the old union until its last user leaves.
func TestUnionServerKeepsDetachedUnions(t *testing.T) {
	_, c, a, cfg, f, pid := openInServedUnion(t)
	if err := unionserver.Detach(a); err != nil {
		t.Fatal(err)
	}
	if err := c.Mount(a, cfg); err != nil {
		t.Fatal(err)
	}
	if err := unionserver.Detach(a); err != nil {
		t.Fatal(err)
	}
	c.Close()
	// Time for an idle exit, were the detached union not counted.
	time.Sleep(3 * unionserver.IdleExit)
	buf := make([]byte, 64)
	if n, err := f.ReadAt(buf, 0); !processAlive(pid) || string(buf[:n]) != "from the lower" {
		t.Fatalf("a file open in a detached union, its server idle: %q, %v; server alive: %v", buf[:n], err, processAlive(pid))
	}
	f.Close()
	if !eventually(5*time.Second, func() bool { return !processAlive(pid) }) {
		t.Errorf("the union server %d runs on after the last user of its last union left", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
