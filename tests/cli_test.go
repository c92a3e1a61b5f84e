package tests

// Tests of the unionfuse command itself: both mount forms, the mount(8)
// helper form, umount, the daemon's life (SIGTERM, external unmount, its
// stdio), -f/-d/--log, --version and help. They run the real binary, built
// once per test process by unionfuseBinary.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/mountinfo"
	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// unionfuseBinary builds cmd/unionfuse once per test process into the
// repository's bin/ (ignored by git, overwritten by each run) and returns
// its path.
func unionfuseBinary(t testing.TB) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := filepath.Abs(filepath.Join("..", "bin"))
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
		if err != nil {
			binaryErr = err
			return
		}
		tmp := filepath.Join(dir, fmt.Sprintf(".unionfuse-test-%d", os.Getpid()))
		out, err := exec.Command("go", "build", "-o", tmp, "../cmd/unionfuse").CombinedOutput()
		// The binaries beside it, as make build puts them
		// (reexec.Sibling): the daemons, the containers' inits and the
		// snapshotter are them.
		for _, sibling := range []string{"fuse", "init", "snapshotter"} {
			if err != nil {
				break
			}
			siblingTmp := tmp + "-" + sibling
			out, err = exec.Command("go", "build", "-o", siblingTmp, "../cmd/unionfuse-"+sibling).CombinedOutput()
			if err == nil {
				err = os.Rename(siblingTmp, filepath.Join(dir, "unionfuse-test-"+sibling))
			}
		}
		if err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		binaryPath = filepath.Join(dir, "unionfuse-test")
		binaryErr = os.Rename(tmp, binaryPath)
	})
	if binaryErr != nil {
		t.Fatalf("build unionfuse: %v", binaryErr)
	}
	return binaryPath
}

// result is what one run of a command gave.
type result struct {
	code           int
	stdout, stderr string
}

// run runs cmd with a time limit. It fails t if cmd does not finish, or if
// its stdout/stderr stay open after it exits (a daemon holding them).
func run(t testing.TB, cmd *exec.Cmd) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q: %v", cmd.Args, err)
	}
	timer := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.Is(err, exec.ErrWaitDelay):
		t.Fatalf("%q exited but its stdout/stderr stayed open (a daemon kept them)", cmd.Args)
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	default:
		t.Fatalf("%q: %v", cmd.Args, err)
	}
	return r
}

// cli runs the unionfuse binary with args.
func cli(t testing.TB, args ...string) result {
	t.Helper()
	return run(t, exec.Command(unionfuseBinary(t), args...))
}

// mustOK fails t unless r is a success with nothing on stderr.
func mustOK(t testing.TB, what string, r result) {
	t.Helper()
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("%s: exit %d, stderr %q", what, r.code, r.stderr)
	}
}

// cliLayout makes lower (f1 f2 f3), upper (f3 f4), work and merged in a
// fresh directory, as the tutorial does, and makes sure whatever gets
// mounted at merged is gone when t ends.
func cliLayout(t *testing.T) layout {
	t.Helper()
	l := newLayout(t, testDir(t), 1)
	for _, f := range []struct{ dir, name, data string }{
		{l.Lowers[0], "f1", "lower 1\n"}, {l.Lowers[0], "f2", "lower 2\n"}, {l.Lowers[0], "f3", "lower 3\n"},
		{l.Upper, "f3", "upper 3\n"}, {l.Upper, "f4", "upper 4\n"},
	} {
		if err := os.WriteFile(filepath.Join(f.dir, f.name), []byte(f.data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cleanupMount(t, l.Merged)
	return l
}

// cleanupMount unmounts merged when t ends if it is still mounted, lazily
// if need be, and stops the daemon recorded for it (started by this test).
func cleanupMount(t *testing.T, merged string) {
	t.Cleanup(func() {
		rec, recErr := daemon.ReadPid(merged)
		if isMounted(merged) {
			t.Errorf("%s still mounted at the end of the test", merged)
			if err := unix.Unmount(merged, 0); err != nil {
				unix.Unmount(merged, unix.MNT_DETACH)
			}
		}
		if recErr == nil && !waitGone(rec, 5*time.Second) {
			t.Errorf("daemon %d of %s still running at the end of the test", rec.PID, merged)
			syscall.Kill(rec.PID, syscall.SIGKILL)
		}
	})
}

// waitGone waits until the process of rec has exited.
func waitGone(rec daemon.Record, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for rec.Alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// daemonOf returns the record of the daemon serving merged.
func daemonOf(t testing.TB, merged string) daemon.Record {
	t.Helper()
	rec, err := daemon.ReadPid(merged)
	if err != nil {
		t.Fatalf("no daemon recorded for %s: %v", merged, err)
	}
	if !rec.Alive() {
		t.Fatalf("daemon %d of %s is not running", rec.PID, merged)
	}
	return rec
}

// checkUnion checks, right after a mount returned, that merged shows the
// tutorial's union and that a write lands in upper.
func checkUnion(t *testing.T, l layout) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(l.Merged, "f3"))
	if err != nil || string(got) != "upper 3\n" {
		t.Fatalf("merged/f3 right after mount = %q, %v; want upper's", got, err)
	}
	names := readNames(t, l.Merged)
	if names != "f1 f2 f3 f4" {
		t.Errorf("merged lists %q, want f1 f2 f3 f4", names)
	}
	if err := os.WriteFile(filepath.Join(l.Merged, "f5"), []byte("new\n"), 0o644); err != nil {
		t.Fatalf("write through the union: %v", err)
	}
	if _, err := os.Stat(filepath.Join(l.Upper, "f5")); err != nil {
		t.Errorf("a file written through the union is not in upper: %v", err)
	}
}

// readNames lists dir, space-separated, sorted.
func readNames(t testing.TB, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

// umountCLI unmounts merged with unionfuse umount and checks that the
// daemon rec has exited by the time it returns.
func umountCLI(t *testing.T, merged string, rec daemon.Record) {
	t.Helper()
	mustOK(t, "unionfuse umount", cli(t, "umount", merged))
	if isMounted(merged) {
		t.Fatalf("%s still mounted after unionfuse umount", merged)
	}
	if rec.Alive() {
		t.Errorf("daemon %d still running after unionfuse umount returned", rec.PID)
	}
	if _, err := daemon.ReadPid(merged); err == nil {
		t.Errorf("pid file of %s left behind", merged)
	}
}

// TestCLIRootBeforeCommand: --root given before the command, as docker
// and podman take their global flags, stores there; alone it is a missing
// command, said in one line (it was "unionfuse mount: unknown flag").
func TestCLIRootBeforeCommand(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	for _, args := range [][]string{{"--root", root}, {"--root=" + root}, {"--root"}} {
		r := cli(t, args...)
		want := "no command given"
		if len(args) == 1 && args[0] == "--root" {
			want = "--root needs a directory"
		}
		if r.code != 2 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, want) || r.stdout != "" {
			t.Errorf("%q: exit %d, stderr %q, stdout %q; want exit 2 and one line saying %q", args, r.code, r.stderr, r.stdout, want)
		}
	}
	for _, args := range [][]string{{"--root", root, "images", "-q"}, {"--root=" + root, "images", "-q"}} {
		if r := cli(t, args...); r.code != 0 || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("--root before images made no store: %v", err)
	}
}

func TestCLIVersionAndHelp(t *testing.T) {
	r := cli(t, "--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "unionfuse ") || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("--version: exit %d, stdout %q", r.code, r.stdout)
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		r := cli(t, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "unionfuse mount") || !strings.Contains(r.stdout, "unionfuse umount") {
			t.Errorf("%q: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	for _, args := range [][]string{{"help", "mount"}, {"mount", "--help"}, {"mount", "-h"}} {
		r := cli(t, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "lowerdir=") || !strings.Contains(r.stdout, "--foreground") {
			t.Errorf("%q: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	// Every mount option, fuse-overlayfs's included, is documented there.
	help := cli(t, "help", "mount").stdout
	for _, opt := range []string{"lowerdir=", "upperdir=", "workdir=", "userxattr", "redirect_dir=", "index=", "passthrough=",
		"uidmapping=", "gidmapping=", "squash_to_root", "squash_to_uid=", "squash_to_gid=", "static_nlink", "noacl",
		"xino=", "fsync=0", "volatile", "allow_other", "default_permissions", "debug", "context=", "xattr_permissions=0"} {
		if !strings.Contains(help, opt) {
			t.Errorf("unionfuse help mount does not document %s", opt)
		}
	}
	for _, args := range [][]string{{"help", "umount"}, {"umount", "-h"}, {"version", "--help"}, {"help", "help"}} {
		if r := cli(t, args...); r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: unionfuse ") {
			t.Errorf("%q: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	for _, args := range [][]string{{}, {"bogus"}, {"help", "bogus"}, {"mount", "--bogus"}, {"umount"}, {"umount", "--nope", "x"}, {"version", "x"}} {
		r := cli(t, args...)
		if r.code != 2 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "unionfuse") || r.stdout != "" {
			t.Errorf("%q: exit %d, stderr %q, stdout %q; want exit 2 and one line on stderr", args, r.code, r.stderr, r.stdout)
		}
	}
}

func TestCLIMountPositional(t *testing.T) {
	testutil.RequireFuse(t)
	l := cliLayout(t)
	mustOK(t, "unionfuse mount", cli(t, "mount", l.Lowers[0], l.Upper, l.Work, l.Merged))
	checkUnion(t, l)
	umountCLI(t, l.Merged, daemonOf(t, l.Merged))
}

func TestCLIMountReadOnly(t *testing.T) {
	testutil.RequireFuse(t)
	l := cliLayout(t)
	second := filepath.Join(filepath.Dir(l.Merged), "lower:2")
	if err := os.Mkdir(second, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(second, "bottom"), []byte("b\n"), 0o644)
	lowers := l.Lowers[0] + ":" + strings.ReplaceAll(second, ":", `\:`)
	mustOK(t, "unionfuse mount (read-only)", cli(t, "mount", lowers, l.Merged))
	rec := daemonOf(t, l.Merged)
	if names := readNames(t, l.Merged); names != "bottom f1 f2 f3" {
		t.Errorf("read-only union lists %q, want bottom f1 f2 f3", names)
	}
	err := os.WriteFile(filepath.Join(l.Merged, "new"), nil, 0o644)
	if !errors.Is(err, unix.EROFS) {
		t.Errorf("write to a read-only union: %v, want EROFS", err)
	}
	if opts := mountOptions(l.Merged); !strings.HasPrefix(opts, "ro,") {
		t.Errorf("mount options %q, want ro", opts)
	}
	umountCLI(t, l.Merged, rec)
}

// mountOptions returns the options of the mount at dir: the
// filesystem's (ro for a read-only union), then the mount point's
// (nosuid, nodev).
func mountOptions(dir string) string {
	m, _ := mountinfo.Lookup(dir)
	if m == nil {
		return ""
	}
	return m.VFSOptions + "," + m.Options
}

// mountSource returns the source of the mount at dir.
func mountSource(dir string) string {
	m, _ := mountinfo.Lookup(dir)
	if m == nil {
		return ""
	}
	return m.Source
}

func TestCLIOptionsForm(t *testing.T) {
	testutil.RequireFuse(t)
	tests := []struct {
		name   string
		args   func(l layout) []string
		source string
	}{
		{"fuse-overlayfs", func(l layout) []string {
			return []string{"-o", "lowerdir=" + l.Lowers[0] + ",upperdir=" + l.Upper + ",workdir=" + l.Work, l.Merged}
		}, "unionfuse"},
		{"options after positionals and a source word", func(l layout) []string {
			return []string{"mysource", l.Merged, "-o", "rw,lowerdir=" + l.Lowers[0] + ",upperdir=" + l.Upper + ",workdir=" + l.Work + ",dev,suid"}
		}, "mysource"},
		{"mount subcommand and repeated -o", func(l layout) []string {
			return []string{"mount", "-o", "lowerdir=" + l.Lowers[0], "-o", "upperdir=" + l.Upper + ",workdir=" + l.Work, "-o", "nodev,noexec", l.Merged}
		}, "unionfuse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := cliLayout(t)
			mustOK(t, "unionfuse "+strings.Join(tt.args(l), " "), cli(t, tt.args(l)...))
			rec := daemonOf(t, l.Merged)
			if src := mountSource(l.Merged); src != tt.source {
				t.Errorf("/proc/mounts source %q, want %q", src, tt.source)
			}
			checkUnion(t, l)
			umountCLI(t, l.Merged, rec)
		})
	}
}

// helperOptions is the -o string mount(8) users write.
func helperOptions(l layout) string {
	return "lowerdir=" + l.Lowers[0] + ",upperdir=" + l.Upper + ",workdir=" + l.Work
}

func TestCLIMountFuse3Helper(t *testing.T) {
	testutil.RequireFuse(t)
	if _, err := os.Stat("/sbin/mount.fuse3"); err != nil {
		t.Skip("needs /sbin/mount.fuse3 (Debian package fuse3)")
	}
	l := cliLayout(t)
	// mount.fuse3 runs "unionfuse SOURCE MERGED -o OPTS" through /bin/sh,
	// found in PATH: give it a PATH holding only our binary as unionfuse.
	pathDir := t.TempDir()
	if err := os.Symlink(unionfuseBinary(t), filepath.Join(pathDir, "unionfuse")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/sbin/mount.fuse3", "unionfuse", l.Merged, "-t", "unionfuse", "-o", helperOptions(l))
	cmd.Env = []string{"PATH=" + pathDir}
	mustOK(t, "mount.fuse3", run(t, cmd))
	rec := daemonOf(t, l.Merged)
	checkUnion(t, l)
	// An external umount(2) makes the daemon exit by itself.
	if err := unix.Unmount(l.Merged, 0); err != nil {
		t.Fatal(err)
	}
	if !waitGone(rec, 10*time.Second) {
		t.Fatalf("daemon %d still running 10s after its union was unmounted", rec.PID)
	}
}

func TestCLIMount8Helper(t *testing.T) {
	testutil.RequireFuse(t)
	helper := "/sbin/mount.fuse.unionfuse"
	bin := unionfuseBinary(t)
	if target, err := os.Readlink(helper); err == nil && target != bin {
		t.Skipf("%s is installed (-> %s); not replacing it", helper, target)
	} else if err != nil {
		if err := os.Symlink(bin, helper); err != nil {
			t.Skipf("cannot install the mount helper: %v", err)
		}
		t.Cleanup(func() { os.Remove(helper) })
	}
	l := cliLayout(t)
	// mount(8) runs the helper with an empty environment here: PATH
	// plays no part in finding it.
	cmd := exec.Command("/bin/mount", "-t", "fuse.unionfuse", "unionfuse", l.Merged, "-o", helperOptions(l))
	cmd.Env = []string{"PATH="}
	mustOK(t, "mount -t fuse.unionfuse", run(t, cmd))
	rec := daemonOf(t, l.Merged)
	checkUnion(t, l)
	if opts := mountOptions(l.Merged); strings.Contains(opts, "nosuid") || strings.Contains(opts, "nodev") {
		t.Errorf("mount(8)'s dev,suid not applied: %s", opts)
	}
	mustOK(t, "umount", run(t, exec.Command("/bin/umount", l.Merged)))
	if !waitGone(rec, 10*time.Second) {
		t.Fatalf("daemon %d still running 10s after umount(8)", rec.PID)
	}
	// -f is mount(8)'s "fake": check only.
	cmd = exec.Command("/bin/mount", "-f", "-t", "fuse.unionfuse", "unionfuse", l.Merged, "-o", helperOptions(l))
	mustOK(t, "mount -f", run(t, cmd))
	if isMounted(l.Merged) {
		t.Error("mount -f (fake) mounted")
	}
}

func TestCLIDaemonSignals(t *testing.T) {
	testutil.RequireFuse(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			l := cliLayout(t)
			mustOK(t, "unionfuse mount", cli(t, "mount", l.Lowers[0], l.Upper, l.Work, l.Merged))
			rec := daemonOf(t, l.Merged)
			// ps names the daemon after its binary, not "exe": the small
			// one beside the CLI (the kernel keeps 15 bytes of the name).
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", rec.PID))
			want := filepath.Base(unionfuseBinary(t)) + daemon.HelperSuffix
			if got, want := strings.TrimSpace(string(comm)), want[:min(len(want), 15)]; got != want {
				t.Errorf("the daemon's process name is %q, want %q", got, want)
			}
			if err := syscall.Kill(rec.PID, sig); err != nil {
				t.Fatal(err)
			}
			if !waitGone(rec, 10*time.Second) {
				t.Fatalf("daemon still running 10s after %v", sig)
			}
			if isMounted(l.Merged) {
				t.Fatalf("%s still mounted after the daemon got %v", l.Merged, sig)
			}
		})
	}
}

func TestCLIForeground(t *testing.T) {
	testutil.RequireFuse(t)
	for _, flag := range []string{"-f", "-d"} {
		t.Run(flag, func(t *testing.T) {
			l := cliLayout(t)
			var stderr bytes.Buffer
			cmd := exec.Command(unionfuseBinary(t), "mount", flag, l.Lowers[0], l.Upper, l.Work, l.Merged)
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var waitErr error
			exited := make(chan struct{})
			go func() { waitErr = cmd.Wait(); close(exited) }()
			defer func() {
				select {
				case <-exited:
				default:
					cmd.Process.Kill()
					<-exited
				}
			}()
			waitMounted(t, l.Merged, exited)
			checkUnion(t, l)
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
				if waitErr != nil {
					t.Errorf("unionfuse mount %s after SIGTERM: %v (stderr %q)", flag, waitErr, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("unionfuse mount %s still running 10s after SIGTERM", flag)
			}
			if isMounted(l.Merged) {
				t.Errorf("still mounted after SIGTERM")
			}
			if flag == "-d" && !strings.Contains(stderr.String(), "LOOKUP") {
				t.Errorf("-d logged no FUSE operations; stderr:\n%s", stderr.String())
			}
		})
	}
}

// waitMounted waits until merged is mounted, or fails t if the process
// ends first (exited is closed) or 10 seconds pass.
func waitMounted(t *testing.T, merged string, exited chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !isMounted(merged) {
		select {
		case <-exited:
			t.Fatalf("unionfuse exited before mounting")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not mounted after 10s", merged)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCLILogFile(t *testing.T) {
	testutil.RequireFuse(t)
	l := cliLayout(t)
	logFile := filepath.Join(t.TempDir(), "sub", "unionfuse.log")
	mustOK(t, "unionfuse mount --log", cli(t, "mount", "--log", logFile, l.Lowers[0], l.Upper, l.Work, l.Merged))
	umountCLI(t, l.Merged, daemonOf(t, l.Merged))
	b, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(b), "mounted "+l.Merged) || !strings.Contains(string(b), "unmounted "+l.Merged) {
		t.Errorf("log %s = %q, %v; want the mount and the unmount", logFile, b, err)
	}
}

func TestCLIUmountNotMounted(t *testing.T) {
	testutil.RequireFuse(t)
	dir := t.TempDir()
	r := cli(t, "umount", dir)
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "not mounted") {
		t.Errorf("umount of a plain directory: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestCLIUmountWithCopyInOtherNamespace: a mount namespace created while
// the union is mounted (a container being set up, another user's rootless
// namespace holder) holds a copy of the mount, which an unmount here does
// not reach (private propagation), and the kernel keeps the connection
// for it. unionfuse umount still ends the daemon, in about a second (it
// said "still running after 10s"), and the copy answers ENOTCONN.
func TestCLIUmountWithCopyInOtherNamespace(t *testing.T) {
	testutil.RequireRoot(t, "creates a mount namespace")
	testutil.RequireFuse(t)
	l := cliLayout(t)
	mustOK(t, "unionfuse mount", cli(t, "mount", l.Lowers[0], l.Upper, l.Work, l.Merged))
	rec := daemonOf(t, l.Merged)

	// The holder reads a line on stdin, then reads f1 through its copy.
	holder := exec.Command("sh", "-c", "read x; cat "+filepath.Join(l.Merged, "f1"))
	holder.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	in, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	holder.Stdout, holder.Stderr = &out, &out
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		in.Close()
		holder.Process.Kill()
		holder.Wait()
	}()
	// The namespace exists (and holds its copy) once sh runs in it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		self, _ := os.Readlink("/proc/self/ns/mnt")
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", holder.Process.Pid)); err == nil && ns != self {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the holder did not enter its mount namespace")
		}
	}

	start := time.Now()
	mustOK(t, "unionfuse umount", cli(t, "umount", l.Merged))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("unionfuse umount took %v", took)
	}
	if rec.Alive() {
		t.Errorf("daemon %d still running after unionfuse umount returned", rec.PID)
	}
	in.Write([]byte("\n"))
	in.Close()
	err = holder.Wait()
	if err == nil || !strings.Contains(out.String(), "not connected") {
		t.Errorf("read through the copy in the other namespace: %v, %q; want ENOTCONN", err, out.String())
	}
}

// TestCLIUmountRightAfterMount: a script that mounts and unmounts at once
// (`unionfuse mount ... && umount merged`) finds the union not busy: the
// daemon reports the mount before its first requests are answered, and
// none of its own keep the mount busy (fs.Config.ServerStaysOut).
func TestCLIUmountRightAfterMount(t *testing.T) {
	testutil.RequireRoot(t, "unmounts with umount(2)")
	testutil.RequireFuse(t)
	l := cliLayout(t)
	for i := 0; i < 20; i++ {
		mustOK(t, "unionfuse mount", cli(t, "mount", l.Lowers[0], l.Upper, l.Work, l.Merged))
		if err := unix.Unmount(l.Merged, 0); err != nil {
			t.Fatalf("umount right after mount, round %d: %v", i, err)
		}
	}
	// And the union a mount returns with serves at once.
	mustOK(t, "unionfuse mount", cli(t, "mount", l.Lowers[0], l.Upper, l.Work, l.Merged))
	if b, err := os.ReadFile(filepath.Join(l.Merged, "f3")); err != nil || string(b) != "upper 3\n" {
		t.Errorf("f3 right after the mount: %q, %v", b, err)
	}
	mustOK(t, "unionfuse umount", cli(t, "umount", l.Merged))
}
