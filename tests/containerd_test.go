package tests

// The unionfuse snapshotter under a real containerd: Debian's containerd
// 1.6 and ctr, started by the test on its own config, sockets, state and
// root directories, with `unionfuse snapshotter` registered as a proxy
// plugin. An image is pulled from a local docker-registry into the
// snapshotter, a container runs on it (its root a fuse3.unionfuse mount
// made by containerd's shim through mount.fuse3), and removing the
// container and the image leaves no snapshot, mount or daemon behind.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/internal/unionserver"
	"github.com/unionfuse/unionfuse/snapshotter"
)

// containerdEnv is a containerd and a unionfuse snapshotter started for
// one test.
type containerdEnv struct {
	dir      string // everything of the test's below it
	address  string // containerd's socket
	config   string // containerd's config file
	snapRoot string // the snapshotter's root
	snapSock string // the snapshotter's socket
	// The same snapshotter in the helper form (--mount-helper
	// unionfuse-fuse), registered as "unionfuse-helper".
	helperRoot, helperSock string
	ns                     string // the containerd namespace the test works in

	stopSnapshotter, stopHelper, stopContainerd func()
}

// startContainerd starts `unionfuse snapshotter` and containerd (with a
// config registering it as the proxy snapshotter "unionfuse") for t, and
// stops both, by pid, when t ends, after deleting the tasks and
// containers left in its namespace. It skips t when containerd, ctr,
// runc or mount.fuse3 is missing or when not root.
func startContainerd(t *testing.T) *containerdEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("containerd runs containers as root here")
	}
	for _, bin := range []string{"containerd", "ctr", "containerd-shim-runc-v2", "runc", "mount.fuse3"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (Debian's containerd, runc and fuse3; make deps installs them)", bin)
		}
	}
	unionfuseOnPath(t)
	e := &containerdEnv{dir: testDir(t), ns: fmt.Sprintf("unionfuse-test-%d", os.Getpid())}
	e.address = filepath.Join(e.dir, "containerd.sock")
	e.config = filepath.Join(e.dir, "config.toml")
	e.snapRoot = filepath.Join(e.dir, "snapshotter")
	e.snapSock = filepath.Join(e.dir, "snapshotter.sock")
	e.helperRoot = filepath.Join(e.dir, "snapshotter-helper")
	e.helperSock = filepath.Join(e.dir, "snapshotter-helper.sock")
	cfg := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
# CRI would set up networks and images of its own; opt would make /opt/containerd.
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[proxy_plugins.unionfuse]
  type = "snapshot"
  address = %[5]q

[proxy_plugins.unionfuse-helper]
  type = "snapshot"
  address = %[6]q
`, filepath.Join(e.dir, "root"), filepath.Join(e.dir, "state"), e.address, e.address+".ttrpc", e.snapSock, e.helperSock)
	if err := os.WriteFile(e.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The daemons in use when t ends, whichever a restart started.
		if e.stopContainerd != nil {
			e.deleteContainers(t)
			e.stopContainerd()
		}
		if e.stopSnapshotter != nil {
			e.stopSnapshotter()
		}
		if e.stopHelper != nil {
			e.stopHelper()
		}
		// The union server exits once it serves nothing and the
		// snapshotter has hung up.
		if pid := e.unionServerPid(); pid > 0 && !eventually(5*time.Second, func() bool { return !processAlive(pid) }) {
			t.Errorf("the union server %d still runs after the test", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			for _, name := range []string{"containerd.log", "snapshotter.log", "snapshotter-helper.log", "snapshotter/unions.log"} {
				b, _ := os.ReadFile(filepath.Join(e.dir, name))
				t.Logf("%s:\n%s", name, lastLines(string(b), 40))
			}
		}
	})
	e.startSnapshotter(t)
	helper := exec.Command(unionfuseBinary(t), "snapshotter", "--root", e.helperRoot, "--address", e.helperSock,
		"--mount-helper", snapshotter.DefaultMountHelper)
	e.stopHelper = startDaemon(t, helper, filepath.Join(e.dir, "snapshotter-helper.log"))
	waitSocket(t, e.helperSock, helper)
	e.startContainerd(t)
	return e
}

// unionServerPid returns the pid of the union server of e's snapshotter
// (the one that listens, or last listened), or 0 when none started.
func (e *containerdEnv) unionServerPid() int {
	b, err := os.ReadFile(unionserver.PidFile(filepath.Join(e.snapRoot, "snapshots")))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// processAlive reports whether pid runs (and is not a zombie).
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// upperOf returns the upper directory of a container snapshot from the
// text of ctr snapshots mounts: its upperdir= in the helper form, the
// fs/ beside the union's mountpoint in the served form (a bind mount of
// snapshots/ID/merged).
func upperOf(mounts string) string {
	if upper := optionValue(mounts, "upperdir"); upper != "" {
		return upper
	}
	f := strings.Fields(mounts)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "bind" && strings.HasSuffix(f[i+1], "/merged") {
			return filepath.Join(filepath.Dir(f[i+1]), "fs")
		}
	}
	return ""
}

// startSnapshotter starts `unionfuse snapshotter` on e's root and socket.
func (e *containerdEnv) startSnapshotter(t *testing.T) {
	t.Helper()
	cmd := exec.Command(unionfuseBinary(t), "snapshotter", "--root", e.snapRoot, "--address", e.snapSock)
	e.stopSnapshotter = startDaemon(t, cmd, filepath.Join(e.dir, "snapshotter.log"))
	waitSocket(t, e.snapSock, cmd)
}

// startContainerd starts containerd on e's config and waits until it
// has loaded the unionfuse snapshotter.
func (e *containerdEnv) startContainerd(t *testing.T) {
	t.Helper()
	cmd := exec.Command("containerd", "--config", e.config)
	e.stopContainerd = startDaemon(t, cmd, filepath.Join(e.dir, "containerd.log"))
	waitSocket(t, e.address, cmd)
	ok := eventually(20*time.Second, func() bool {
		r := e.ctr(t, "plugins", "ls")
		return r.code == 0 && strings.Contains(r.stdout, "unionfuse")
	})
	if !ok {
		t.Fatal("containerd has not loaded the unionfuse snapshotter")
	}
}

// deleteContainers kills and deletes the tasks and containers left in
// e's namespace (a test that failed half way), so that no container,
// shim or union daemon outlives the test.
func (e *containerdEnv) deleteContainers(t *testing.T) {
	t.Helper()
	for _, id := range strings.Fields(e.ctr(t, "task", "ls", "-q").stdout) {
		e.ctr(t, "task", "delete", "-f", id)
	}
	for _, id := range strings.Fields(e.ctr(t, "container", "ls", "-q").stdout) {
		e.ctr(t, "container", "rm", id)
	}
}

// startDaemon starts cmd with its output appended to logFile and returns
// the function that stops it with SIGTERM (SIGKILL after 10 s), by its
// pid; calling it again does nothing.
func startDaemon(t *testing.T, cmd *exec.Cmd, logFile string) (stop func()) {
	t.Helper()
	log, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close() // cmd has its own descriptor once started
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Args[0], err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Errorf("%s did not stop on SIGTERM", cmd.Args[0])
				cmd.Process.Kill()
				<-exited
			}
		})
	}
}

// waitSocket waits until something listens on the unix socket sock.
func waitSocket(t *testing.T, sock string, cmd *exec.Cmd) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return
		}
		if cmd.ProcessState != nil || time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s", cmd.Args[0], sock)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ctr runs ctr against e's containerd, in e's namespace.
func (e *containerdEnv) ctr(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"-a", e.address, "-n", e.ns}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		r.code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			t.Fatalf("ctr %v: timed out", args)
		}
	}
	return r
}

// mustCtr runs ctr and fails t unless it succeeds; it returns stdout.
func (e *containerdEnv) mustCtr(t *testing.T, args ...string) string {
	t.Helper()
	r := e.ctr(t, args...)
	if r.code != 0 {
		t.Fatalf("ctr %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// run returns the arguments of ctr run with args on the unionfuse
// snapshotter, with its FIFOs and runc's state under e.dir rather than
// in /run/containerd.
func (e *containerdEnv) run(args ...string) []string { return e.runOn("unionfuse", args...) }

// runOn is run on the snapshotter named sn.
func (e *containerdEnv) runOn(sn string, args ...string) []string {
	return append([]string{"run", "--snapshotter", sn,
		"--fifo-dir", filepath.Join(e.dir, "fifo"), "--runc-root", filepath.Join(e.dir, "runc")}, args...)
}

// snapshotDirs lists the directories under the snapshotter's snapshots/.
func (e *containerdEnv) snapshotDirs(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.snapRoot, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range ents {
		names = append(names, d.Name())
	}
	return names
}

// pullBusybox pushes busybox to a registry started for t and pulls it
// into e's containerd with the unionfuse snapshotter; it returns its
// reference.
func (e *containerdEnv) pullBusybox(t *testing.T) string {
	t.Helper()
	reg := startRegistry(t, false)
	ref := reg.host + "/busybox:1.0"
	pushedBusybox(t, ref)
	e.mustCtr(t, "image", "pull", "--plain-http", "--snapshotter", "unionfuse", ref)
	return ref
}

func TestContainerdRunUnionfuse(t *testing.T) {
	e := startContainerd(t)
	ref := e.pullBusybox(t)
	if dirs := e.snapshotDirs(t); len(dirs) != 1 {
		t.Fatalf("after pulling a one-layer image, snapshots/ holds %v, want one layer", dirs)
	}

	out := e.mustCtr(t, e.run("--rm", ref, "echo-ok", "echo", "ok")...)
	if out != "ok\n" {
		t.Fatalf("ctr run ... echo ok printed %q", out)
	}

	// A container kept after it exits: its writes are in its snapshot's
	// upper directory, and its root was a unionfuse mount.
	out = e.mustCtr(t, e.run(ref, "writer", "sh", "-c", "echo written > /new-file && rm /bin/cat && grep ' / ' /proc/self/mounts")...)
	if !strings.Contains(out, "fuse.unionfuse") {
		t.Errorf("the container's root is not a unionfuse mount: %q", out)
	}
	mounts := e.mustCtr(t, "snapshots", "--snapshotter", "unionfuse", "mounts", "/m", "writer")
	if !strings.Contains(mounts, "-t bind") {
		t.Errorf("the served form returns a bind mount of the union: %q", mounts)
	}
	upper := upperOf(mounts)
	if upper == "" {
		t.Fatalf("no upper in the container snapshot's mounts: %q", mounts)
	}
	if b, err := os.ReadFile(filepath.Join(upper, "new-file")); err != nil || string(b) != "written\n" {
		t.Errorf("the container's write in its upper %s: %q, %v", upper, b, err)
	}
	if st, err := os.Lstat(filepath.Join(upper, "bin", "cat")); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("the container's rm /bin/cat left no whiteout in its upper: %v", err)
	}
	// containerd removes a snapshot from its snapshotter in its garbage
	// collection, a moment after the removal it was asked for.
	e.mustCtr(t, "container", "rm", "writer")
	if !eventually(10*time.Second, func() bool { _, err := os.Stat(upper); return os.IsNotExist(err) }) {
		t.Errorf("the container's upper %s is still there after ctr container rm", upper)
	}

	// The helper form: containerd mounts fuse3.unionfuse-fuse itself.
	e.mustCtr(t, "image", "pull", "--plain-http", "--snapshotter", "unionfuse-helper", ref)
	if out := e.mustCtr(t, e.runOn("unionfuse-helper", "--rm", ref, "helper-ok", "sh", "-c", "grep ' / ' /proc/self/mounts")...); !strings.Contains(out, "fuse.unionfuse") {
		t.Errorf("the helper form's container root: %q", out)
	}
	if mounts := e.mustCtr(t, "snapshots", "--snapshotter", "unionfuse-helper", "ls"); strings.Count(mounts, "\n") != 2 {
		t.Errorf("the helper form's snapshots after ctr run --rm:\n%s", mounts)
	}

	e.mustCtr(t, "image", "rm", "--sync", ref)
	if !eventually(10*time.Second, func() bool { return len(e.snapshotDirs(t)) == 0 }) {
		ls := e.ctr(t, "snapshots", "--snapshotter", "unionfuse", "ls")
		t.Fatalf("after ctr image rm, snapshots/ still holds %v\n%s", e.snapshotDirs(t), ls.stdout)
	}
}

// TestContainerdRestarts restarts the snapshotter, then containerd,
// under a running container: its union stays mounted and writable (the
// union server is not the snapshotter's process), the snapshotter finds
// its snapshots again in its metadata. Then the union server is killed:
// the container is removed cleanly all the same, and the next one runs.
func TestContainerdRestarts(t *testing.T) {
	e := startContainerd(t)
	ref := e.pullBusybox(t)
	e.mustCtr(t, e.run("-d", ref, "sleeper", "sleep", "120")...)
	exec := func(id, script string) string {
		t.Helper()
		return e.mustCtr(t, "task", "exec", "--fifo-dir", filepath.Join(e.dir, "fifo"), "--exec-id", id, "sleeper", "sh", "-c", script)
	}
	if out := exec("before", "echo before > /f && cat /f"); out != "before\n" {
		t.Fatalf("exec before the restarts printed %q", out)
	}
	before := e.mustCtr(t, "snapshots", "--snapshotter", "unionfuse", "ls")

	e.stopSnapshotter()
	e.startSnapshotter(t)
	if out := exec("after-snapshotter", "echo after >> /f && cat /f"); out != "before\nafter\n" {
		t.Errorf("exec after restarting the snapshotter printed %q", out)
	}
	if after := e.mustCtr(t, "snapshots", "--snapshotter", "unionfuse", "ls"); after != before {
		t.Errorf("snapshots after restarting the snapshotter:\n%s\nbefore:\n%s", after, before)
	}

	e.stopContainerd()
	e.startContainerd(t)
	if out := exec("after-containerd", "cat /f"); out != "before\nafter\n" {
		t.Errorf("exec after restarting containerd printed %q", out)
	}

	// The union server killed: the unions it served die with it (their
	// users get ENOTCONN), removing their snapshots detaches the dead
	// mounts, and the next container gets a new server.
	pid := e.unionServerPid()
	if pid <= 0 || !processAlive(pid) {
		t.Fatalf("no union server runs under the container (pid file: %d)", pid)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	if !eventually(5*time.Second, func() bool { return !processAlive(pid) }) {
		t.Fatalf("the union server %d outlived SIGKILL", pid)
	}
	e.mustCtr(t, "task", "delete", "-f", "sleeper")
	e.mustCtr(t, "container", "rm", "sleeper")
	if out := e.mustCtr(t, e.run("--rm", ref, "after-kill", "echo", "ok")...); out != "ok\n" {
		t.Errorf("ctr run after the union server was killed printed %q", out)
	}
	if again := e.unionServerPid(); again == pid || again <= 0 {
		t.Errorf("the union server after the kill: pid %d (killed: %d)", again, pid)
	}
	e.mustCtr(t, "image", "rm", "--sync", ref)
	if !eventually(10*time.Second, func() bool { return len(e.snapshotDirs(t)) == 0 }) {
		t.Errorf("snapshots/ still holds %v after removing the container and the image", e.snapshotDirs(t))
	}
}

// eventually polls cond every 50 ms until it holds (true) or d has
// passed (false).
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// optionValue returns the value of NAME=VALUE in the text of mount
// commands (ctr snapshots mounts prints `mount -t TYPE SOURCE TARGET -o
// opt,opt,...`), or "".
func optionValue(text, name string) string {
	for _, f := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v
		}
	}
	return ""
}
