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
	"strings"
	"syscall"
	"testing"
	"time"
)

// containerdEnv is a containerd and a unionfuse snapshotter started for
// one test.
type containerdEnv struct {
	dir      string // everything of the test's below it
	address  string // containerd's socket
	snapRoot string // the snapshotter's root
	ns       string // the containerd namespace the test works in
}

// startContainerd starts `unionfuse snapshotter` and containerd (with a
// config registering it as the proxy snapshotter "unionfuse") for t, and
// stops both, by pid, when t ends. It skips t when containerd, ctr, runc
// or mount.fuse3 is missing or when not root.
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
	e.snapRoot = filepath.Join(e.dir, "snapshotter")
	snapSock := filepath.Join(e.dir, "snapshotter.sock")

	snap := exec.Command(unionfuseBinary(t), "snapshotter", "--root", e.snapRoot, "--address", snapSock)
	startDaemon(t, snap, filepath.Join(e.dir, "snapshotter.log"))
	waitSocket(t, snapSock, snap)

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
`, filepath.Join(e.dir, "root"), filepath.Join(e.dir, "state"), e.address, e.address+".ttrpc", snapSock)
	cfgFile := filepath.Join(e.dir, "config.toml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctrd := exec.Command("containerd", "--config", cfgFile)
	startDaemon(t, ctrd, filepath.Join(e.dir, "containerd.log"))
	waitSocket(t, e.address, ctrd)
	// The proxy plugin is loaded once containerd serves: ask it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := e.ctr(t, "plugins", "ls")
		if r.code == 0 && strings.Contains(r.stdout, "unionfuse") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd has no unionfuse snapshotter plugin: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return e
}

// startDaemon starts cmd with its output in logFile, and when t ends
// stops it with SIGTERM (SIGKILL after 10 s), by its pid; a failed test
// shows the log.
func startDaemon(t *testing.T, cmd *exec.Cmd, logFile string) {
	t.Helper()
	log, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("start %s: %v", cmd.Args[0], err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop on SIGTERM", cmd.Args[0])
			cmd.Process.Kill()
			<-exited
		}
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("%s log:\n%s", filepath.Base(cmd.Args[0]), lastLines(string(b), 40))
		}
	})
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
func (e *containerdEnv) run(args ...string) []string {
	return append([]string{"run", "--snapshotter", "unionfuse",
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

func TestContainerdRunUnionfuse(t *testing.T) {
	e := startContainerd(t)
	reg := startRegistry(t, false)
	ref := reg.host + "/busybox:1.0"
	pushedBusybox(t, ref)

	e.mustCtr(t, "image", "pull", "--plain-http", "--snapshotter", "unionfuse", ref)
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
	upper := optionValue(mounts, "upperdir")
	if upper == "" {
		t.Fatalf("no upperdir in the container snapshot's mounts: %q", mounts)
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
	e.mustCtr(t, "image", "rm", "--sync", ref)
	if !eventually(10*time.Second, func() bool { return len(e.snapshotDirs(t)) == 0 }) {
		ls := e.ctr(t, "snapshots", "--snapshotter", "unionfuse", "ls")
		t.Fatalf("after ctr image rm, snapshots/ still holds %v\n%s", e.snapshotDirs(t), ls.stdout)
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
