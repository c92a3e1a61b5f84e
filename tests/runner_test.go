package tests

// The runner end to end: unionfuse run, ps, logs, stop, start, exec, diff,
// commit, export and rm on a busybox image, as root and as an
// unprivileged user (in a user namespace, through fusermount3).

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// containerMode is how the containers of a test run: as root or as uid
// 65534 (rootless), with subordinate ids or without.
type containerMode struct {
	rootless bool
	// subIDs, when not nil: the user has subordinate ids, so commands run
	// in its rootless user namespace (uid 1.. of the container =
	// subIDStart..).
	subIDs *subIDFiles
}

// containerEnv is a store with a busybox image, used through the CLI by
// root or by uid 65534.
type containerEnv struct {
	containerMode
	t     *testing.T
	bin   string
	dir   string // holds the store; world-readable when rootless
	store string
}

// subIDStart is the first host id of uid 65534's subordinate ranges in
// TestRunnerSubIDs.
const subIDStart = 300000

// requireContainers skips t unless containers can run as root, or as uid
// 65534 when rootless, and sets up what they need for the rest of t: uid
// 65534's subordinate ids with subIDs, /dev/fuse open to it when
// rootless. Each subtest then makes its own store with newContainerEnv.
func requireContainers(t *testing.T, rootless, subIDs bool) containerMode {
	t.Helper()
	testutil.RequireMounts(t)
	requireTools(t, "setpriv", "fusermount3", "nsenter")
	mode := containerMode{rootless: rootless}
	if subIDs {
		for _, tool := range []string{"newuidmap", "newgidmap"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("needs %s (make deps installs uidmap)", tool)
			}
		}
		ids := addSubIDs(t, "nobody", subIDStart, 65536)
		mode.subIDs = &ids
	} else if rootless && hasSubIDs("nobody") {
		t.Skip("uid 65534 has subordinate ids in /etc/subuid: its containers are TestRunnerSubIDs's case")
	}
	busyboxRootfs(t)
	if rootless {
		openFuseDevice(t)
	}
	return mode
}

// newContainerEnv makes a store of t's own holding busybox:latest
// (imported by the user the env runs as), after requireContainers.
func newContainerEnv(t *testing.T, mode containerMode) *containerEnv {
	t.Helper()
	e := &containerEnv{containerMode: mode, t: t, bin: unionfuseBinary(t)}
	if e.rootless {
		e.dir = worldDir(t)
		os.Chown(e.dir, nobody, nobody)
	} else {
		e.dir = testDir(t)
	}
	e.store = filepath.Join(e.dir, "store")
	tarball := filepath.Join(e.dir, "busybox.tar.gz")
	if err := os.WriteFile(tarball, busyboxRootfs(t), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cleanup)
	mustSucceed(t, "import", e.u("import", tarball, "busybox:latest"))
	return e
}

// command returns the CLI command for args, run as the env's user.
func (e *containerEnv) command(args ...string) *exec.Cmd {
	argv := append([]string{e.bin}, args...)
	if e.rootless {
		argv = append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}, argv...)
	}
	if e.subIDs != nil {
		argv = e.subIDs.with(argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "UNIONFUSE_ROOT="+e.store, "HOME="+e.dir, "XDG_RUNTIME_DIR="+e.dir)
	cmd.Dir = e.dir
	return cmd
}

// u runs the CLI with args.
func (e *containerEnv) u(args ...string) result {
	e.t.Helper()
	return run(e.t, e.command(args...))
}

// cleanup removes every container (killing what runs), checks that
// nothing stays mounted and ends the user namespace's holder process.
func (e *containerEnv) cleanup() {
	r := run(e.t, e.command("ps", "-aq"))
	if ids := strings.Fields(r.stdout); len(ids) > 0 {
		run(e.t, e.command(append([]string{"rm", "-f"}, ids...)...))
	}
	checkNoMountsUnder(e.t, e.dir)
	if pid := e.holderPid(); pid > 0 {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mounts", pid)); err == nil && strings.Contains(string(b), " "+e.dir+"/") {
			e.t.Errorf("left mounted in the user namespace:\n%s", b)
		}
		syscall.Kill(pid, syscall.SIGTERM)
	}
}

// holderPid returns the pid of the process holding the user's rootless
// user namespace (started by the first command), or 0.
func (e *containerEnv) holderPid() int {
	b, err := os.ReadFile(filepath.Join(e.dir, "unionfuse", "userns.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.Fields(string(b))[0])
	return pid
}

// mustSucceed fails t unless r exited 0 (stderr may hold progress).
func mustSucceed(t testing.TB, what string, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
	}
}

// expect checks a result's exit status, stdout, and that stderr holds
// errPart.
func expect(t testing.TB, what string, r result, code int, stdout, errPart string) {
	t.Helper()
	if r.code != code || r.stdout != stdout || !strings.Contains(r.stderr, errPart) || errPart == "" && r.stderr != "" {
		t.Errorf("%s: exit %d, stdout %q, stderr %q\nwant exit %d, stdout %q, stderr with %q", what, r.code, r.stdout, r.stderr, code, stdout, errPart)
	}
}

func TestRunner(t *testing.T)         { testRunner(t, false, false) }
func TestRunnerRootless(t *testing.T) { testRunner(t, true, false) }

// TestRunnerSubIDs: an unprivileged user with subordinate ids gets the
// full range in its containers (newuidmap), as with rootless podman.
func TestRunnerSubIDs(t *testing.T) { testRunner(t, true, true) }

func testRunner(t *testing.T, rootless, subIDs bool) {
	mode := requireContainers(t, rootless, subIDs)
	// Each subtest has a store of its own: they run alone, in any order,
	// two or more at a time (go test -parallel).
	subtest := func(name string, f func(t *testing.T, e *containerEnv)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, newContainerEnv(t, mode))
		})
	}
	caller := 0
	if rootless {
		caller = nobody
	}

	subtest("exit status and output", func(t *testing.T, e *containerEnv) {
		expect(t, "run", e.u("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"), 3, "out\n", "err\n")
		expect(t, "run true", e.u("run", "--rm", "busybox", "true"), 0, "", "")
	})

	subtest("namespaces and root", func(t *testing.T, e *containerEnv) {
		r := e.u("run", "--rm", "--hostname", "box", "busybox", "sh", "-c",
			"hostname; cat /etc/hostname; echo $$; test $(ps -o pid= | wc -l) -lt 10 && echo own pids; ls /dev/null /dev/zero /dev/urandom /dev/pts/ptmx >/dev/null && echo dev; test -d /proc/self && echo proc; touch /sys/x 2>/dev/null || echo sys ro")
		expect(t, "run", r, 0, "box\nbox\n1\nown pids\ndev\nproc\nsys ro\n", "")
	})

	subtest("env workdir user", func(t *testing.T, e *containerEnv) {
		envFile := filepath.Join(e.dir, "env.list")
		os.WriteFile(envFile, []byte("# comment\nFROMFILE=yes\n"), 0o644)
		r := e.u("run", "--rm", "-e", "FOO=bar", "--env-file", envFile, "-w", "/work/dir", "busybox", "sh", "-c", "echo $FOO $FROMFILE $HOME; pwd; id -u")
		expect(t, "run", r, 0, "bar yes /root\n/work/dir\n0\n", "")
		if rootless && !subIDs {
			r = e.u("run", "--rm", "-u", "1000", "busybox", "id", "-u")
			expect(t, "run -u nobody (rootless)", r, 125, "", "is not mapped in this rootless container")
		} else {
			mustSucceed(t, "run", e.u("run", "--name", "adduser", "busybox", "sh", "-c",
				"echo nobody:x:65534:65534:nobody:/nonexistent:/bin/sh >> /etc/passwd; echo nogroup:x:65534: >> /etc/group;"+
					"echo big:x:36028797018963968:0:big:/:/bin/sh >> /etc/passwd"))
			mustSucceed(t, "commit", e.u("commit", "adduser", "users:1"))
			mustSucceed(t, "rm", e.u("rm", "adduser"))
			r = e.u("run", "--rm", "-u", "nobody", "users:1", "sh", "-c", "id -u; id -g")
			expect(t, "run -u nobody", r, 0, "65534\n65534\n", "")
			// setresuid(2) would truncate 2^55 to 0: root.
			r = e.u("run", "--rm", "-u", "big", "users:1", "id", "-u")
			expect(t, "run -u big (uid 2^55)", r, 125, "", "ids go from 0 to 4294967294")
			r = e.u("run", "--rm", "-u", "1234:5678", "busybox", "sh", "-c", "id -u; id -g")
			expect(t, "run -u 1234:5678", r, 0, "1234\n5678\n", "")
		}
		expect(t, "run --entrypoint", e.u("run", "--rm", "--entrypoint", "echo", "busybox", "a", "b"), 0, "a b\n", "")
	})

	subtest("bad input leaves nothing", func(t *testing.T, e *containerEnv) {
		expect(t, "not found", e.u("run", "--rm", "busybox", "nosuchcommand"), 127, "", `exec: "nosuchcommand": executable file not found in $PATH`)
		expect(t, "not found, no --rm", e.u("run", "busybox", "/bin/nosuch"), 127, "", "no such file or directory")
		expect(t, "not executable", e.u("run", "busybox", "/etc/passwd"), 126, "", "permission denied")
		expect(t, "unknown image, --pull never", e.u("run", "--rm", "--pull", "never", "nosuchimage", "true"), 125, "", "No such image: nosuchimage:latest")
		expect(t, "unknown image, no registry", e.u("run", "--rm", "127.0.0.1:1/nosuchimage", "true"), 125, "",
			"Unable to find image '127.0.0.1:1/nosuchimage:latest' locally\nunionfuse: pull 127.0.0.1:1/nosuchimage:latest: registry unreachable: connection refused")
		expect(t, "unknown user", e.u("run", "--rm", "-u", "nosuchuser", "busybox", "true"), 125, "", "unable to find user nosuchuser")
		expect(t, "no variable name", e.u("run", "--rm", "-e", "=x", "busybox", "true"), 125, "", "invalid environment variable: =x")
		expect(t, "one-character name", e.u("run", "--rm", "--name", "a", "busybox", "true"), 125, "", `invalid container name "a"`)
		if r := e.u("run", "--rm", "--name", strings.Repeat("n", 300), "busybox", "true"); r.code != 125 ||
			!strings.Contains(r.stderr, "300 characters, more than the 255 allowed") || len(r.stderr) > 200 {
			t.Errorf("a 300-character name: exit %d, stderr %q", r.code, r.stderr)
		}
		expect(t, "missing volume", e.u("run", "--rm", "-v", "/nonexistent/src:/data", "busybox", "true"), 125, "", "does not exist")
		// Without root, user-defined networks need subordinate ids.
		expect(t, "bad network", e.u("run", "--rm", "--network", "mesh", "busybox", "true"), 125, "",
			map[bool]string{false: "network mesh not found", true: "user-defined networks need root or, rootless, subordinate ids"}[e.rootless && e.subIDs == nil])
		expect(t, "unknown container", e.u("stop", "nosuch"), 1, "", "no such container")
		expect(t, "ps", e.u("ps", "-aq"), 0, "", "")
		if ents, _ := os.ReadDir(filepath.Join(e.store, "containers")); len(ents) != 0 {
			t.Errorf("containers/ holds %d entries after failed runs", len(ents))
		}
		expect(t, "name", e.u("run", "--name", "taken", "busybox", "true"), 0, "", "")
		expect(t, "name in use", e.u("run", "--name", "taken", "busybox", "true"), 125, "", `the container name "taken" is already in use`)
		mustSucceed(t, "rm", e.u("rm", "taken"))
	})

	subtest("confined", func(t *testing.T, e *containerEnv) {
		// The kernel's tunables stay read-only, nothing can be remounted
		// (no CAP_SYS_ADMIN), and root keeps Docker's default capabilities.
		r := e.u("run", "--rm", "busybox", "sh", "-c",
			`(echo x > /proc/sys/kernel/core_pattern) 2>/dev/null || echo sys ro; mount -o remount,rw /proc/sys 2>/dev/null || echo no remount; grep CapEff /proc/self/status`)
		expect(t, "run", r, 0, "sys ro\nno remount\nCapEff:\t00000000a80425fb\n", "")
	})

	subtest("volumes", func(t *testing.T, e *containerEnv) {
		src := filepath.Join(e.dir, "vol")
		os.Mkdir(src, 0o777)
		os.Chmod(src, 0o777)
		os.WriteFile(filepath.Join(src, "in"), []byte("from host\n"), 0o644)
		r := e.u("run", "--rm", "-v", src+":/data", "-v", src+":/ro:ro", "busybox", "sh", "-c",
			"cat /data/in; echo from container > /data/out; touch /ro/x 2>/dev/null || echo read-only; mount -o remount,bind,rw /ro 2>/dev/null || echo stays read-only")
		expect(t, "run -v", r, 0, "from host\nread-only\nstays read-only\n", "")
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(src, "out"), &st); err != nil || int(st.Uid) != caller {
			t.Errorf("the file the container wrote: %v, uid %d, want uid %d", err, st.Uid, caller)
		}
		if subIDs {
			r := e.u("run", "--rm", "-u", "1000:1000", "-v", src+":/data", "busybox", "sh", "-c", "id -u; echo x > /data/by1000")
			expect(t, "run -u 1000", r, 0, "1000\n", "")
			if err := unix.Stat(filepath.Join(src, "by1000"), &st); err != nil || st.Uid != subIDStart+999 || st.Gid != subIDStart+999 {
				t.Errorf("the file uid 1000 wrote: %v, owner %d:%d on the host, want %d:%d", err, st.Uid, st.Gid, subIDStart+999, subIDStart+999)
			}
		}
	})

	subtest("no escape through symlinks", func(t *testing.T, e *containerEnv) {
		// An image whose /evil points at a host path: a volume below it
		// lands inside the container's root, never on the host.
		target := filepath.Join(e.dir, "escape-target")
		os.Mkdir(target, 0o777)
		mustSucceed(t, "run", e.u("run", "--name", "evil", "busybox", "sh", "-c", "ln -s "+target+" /evil; ln -s ../../../../../../../.. /up"))
		mustSucceed(t, "commit", e.u("commit", "evil", "evil:1"))
		src := filepath.Join(e.dir, "vol2")
		os.Mkdir(src, 0o777)
		r := e.u("run", "--rm", "-v", src+":/evil/sub", "-v", src+":/up/tmp/escaped", "evil:1", "sh", "-c", "for p in /evil/sub "+target+"/sub /tmp/escaped; do ls -d $p; done")
		expect(t, "run", r, 0, "/evil/sub\n"+target+"/sub\n/tmp/escaped\n", "")
		if _, err := os.Stat(filepath.Join(target, "sub")); err == nil {
			t.Errorf("the volume was mounted on the host, below %s", target)
		}
		if _, err := os.Stat("/tmp/escaped"); err == nil {
			t.Errorf("the volume's mount point was made on the host: /tmp/escaped")
			os.Remove("/tmp/escaped")
		}
		mustSucceed(t, "rm", e.u("rm", "evil"))
	})

	subtest("detached, logs, stop, start", func(t *testing.T, e *containerEnv) {
		script := `trap 'echo got TERM; exit 0' TERM; echo run >> /runs; cat /runs | wc -l; while :; do sleep 0.1; done`
		r := e.u("run", "-d", "--name", "web", "busybox", "sh", "-c", script)
		mustSucceed(t, "run -d", r)
		id := strings.TrimSpace(r.stdout)
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
			t.Fatalf("run -d printed %q, want a container id", r.stdout)
		}
		waitFor(t, func() bool { return strings.Contains(e.u("logs", "web").stdout, "1\n") })
		ps := e.u("ps")
		if !regexp.MustCompile(`(?m)^` + id[:12] + `\s+busybox\s+"sh -c trap 'echo go…"\s+.* ago\s+Up .*\s+web$`).MatchString(ps.stdout) {
			t.Errorf("ps:\n%s", ps.stdout)
		}
		expect(t, "exec", e.u("exec", "web", "sh", "-c", "cat /runs; hostname; exit 4"), 4, "run\n"+id[:12]+"\n", "")
		// -t: a terminal of the container's own devpts (tty names it),
		// the controlling one (/dev/tty opens), TERM set, CRLF output.
		if r := e.u("exec", "-t", "web", "sh", "-c", "tty; echo $TERM; : </dev/tty && echo ctty; exit 5"); r.code != 5 ||
			!regexp.MustCompile(`^/dev/pts/\d+\r\nxterm\r\nctty\r\n$`).MatchString(r.stdout) {
			t.Errorf("exec -t: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		checkTerminalSize(t, e, "exec", "web")
		checkTerminalSize(t, e, "run", "--rm", "busybox")
		cmd := e.command("exec", "-it", "web", "sh", "-c", "read line; echo got $line")
		cmd.Stdin = strings.NewReader("typed\n")
		if r := run(t, cmd); r.code != 0 || !strings.Contains(r.stdout, "got typed\r\n") {
			t.Errorf("exec -it: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		expect(t, "stop", e.u("stop", "web"), 0, "web\n", "")
		if r := e.u("ps", "-a"); !strings.Contains(r.stdout, "Exited (0)") {
			t.Errorf("ps -a after stop:\n%s", r.stdout)
		}
		if r := e.u("logs", "web"); r.stdout != "1\ngot TERM\n" {
			t.Errorf("logs: %q", r.stdout)
		}
		expect(t, "start", e.u("start", "web"), 0, "web\n", "")
		waitFor(t, func() bool { return strings.Contains(e.u("logs", "web").stdout, "2\n") })
		expect(t, "exec after start", e.u("exec", "web", "cat", "/runs"), 0, "run\nrun\n", "")
		expect(t, "rm running", e.u("rm", "web"), 1, "", "it is running")
		expect(t, "kill", e.u("kill", "-s", "TERM", "web"), 0, "web\n", "")
		expect(t, "wait", e.u("wait", "web"), 0, "0\n", "")
		expect(t, "rm", e.u("rm", "web"), 0, "web\n", "")
		if _, err := os.Stat(filepath.Join(e.store, "containers", id)); !os.IsNotExist(err) {
			t.Errorf("containers/%s after rm: %v", id[:12], err)
		}
	})

	subtest("diff commit export", func(t *testing.T, e *containerEnv) {
		mustSucceed(t, "run", e.u("run", "--name", "changer", "busybox", "sh", "-c", "echo new > /new; rm /bin/vi; echo x >> /etc/passwd; mkdir -p /a/b"))
		expect(t, "diff", e.u("diff", "changer"), 0, "A /a\nA /a/b\nC /bin\nD /bin/vi\nC /etc\nC /etc/passwd\nA /new\n", "")
		r := e.u("commit", "-m", "changes", "changer", "changed:1")
		mustSucceed(t, "commit", r)
		expect(t, "run committed", e.u("run", "--rm", "changed:1", "sh", "-c", "cat /new; test -e /bin/vi || echo no vi; tail -1 /etc/passwd"), 0, "new\nno vi\nx\n", "")
		tarball := filepath.Join(e.dir, "export.tar")
		mustSucceed(t, "export", e.u("export", "-o", tarball, "changer"))
		out, err := exec.Command("tar", "-tf", tarball).Output()
		if err != nil {
			t.Fatal(err)
		}
		names := "\n" + string(out)
		for _, want := range []string{"\nnew\n", "\nbin/busybox\n", "\na/b/\n"} {
			if !strings.Contains(names, want) {
				t.Errorf("export lacks %q", strings.TrimSpace(want))
			}
		}
		if strings.Contains(names, "\nbin/vi\n") {
			t.Errorf("export holds the deleted bin/vi")
		}
		// As docker: a FIFO, a device node or a symbolic link at -o is
		// refused, never replaced by a regular file.
		// (Not /dev/full itself: a build without the fix replaces it.)
		fifo, link, dev := filepath.Join(e.dir, "fifo"), filepath.Join(e.dir, "link"), filepath.Join(e.dir, "full")
		unix.Mkfifo(fifo, 0o644)
		os.Symlink(tarball, link)
		unix.Mknod(dev, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 7)))
		for _, p := range []string{fifo, link, dev} {
			before, err := os.Lstat(p)
			if err != nil {
				continue // no device nodes here
			}
			expect(t, "export -o "+p, e.u("export", "-o", p, "changer"), 1, "", "cannot write to")
			if after, err := os.Lstat(p); err != nil || after.Mode() != before.Mode() {
				t.Errorf("export -o %s: now %v (%v), was %v", p, after.Mode(), err, before.Mode())
			}
		}
		mustSucceed(t, "rm", e.u("rm", "changer"))
	})

	subtest("commit of a running container", func(t *testing.T, e *containerEnv) {
		// Paused while its layer is read (as docker commit), then running
		// on: the counter it writes still moves afterwards. It is written
		// aside and renamed, so a pause never catches it truncated.
		mustSucceed(t, "run -d", e.u("run", "-d", "--name", "live", "busybox", "sh", "-c",
			"i=0; while :; do i=$((i+1)); echo $i > /count.new; mv /count.new /count; sleep 0.05; done"))
		waitFor(t, func() bool { return e.u("exec", "live", "cat", "/count").code == 0 })
		mustSucceed(t, "commit", e.u("commit", "live", "live:1"))
		before := e.u("exec", "live", "cat", "/count").stdout
		waitFor(t, func() bool { return e.u("exec", "live", "cat", "/count").stdout != before })
		if r := e.u("run", "--rm", "live:1", "cat", "/count"); r.code != 0 || r.stdout == "" {
			t.Errorf("the committed image has no /count: %+v", r)
		}
		mustSucceed(t, "rm", e.u("rm", "-f", "live"))
		mustSucceed(t, "rmi", e.u("rmi", "live:1"))
	})

	subtest("five containers share the image", func(t *testing.T, e *containerEnv) {
		for i := 0; i < 5; i++ {
			mustSucceed(t, "run", e.u("run", "--name", fmt.Sprintf("c%d", i), "busybox", "sh", "-c", fmt.Sprintf("head -c %d /dev/zero > /data", 1000*(i+1))))
		}
		ps := e.u("ps", "-a", "-s")
		for i := 0; i < 5; i++ {
			want := regexp.MustCompile(fmt.Sprintf(`(?m)\s%dkB \(virtual [0-9.]+MB\)$`, i+1))
			line := ""
			for _, l := range strings.Split(ps.stdout, "\n") {
				if strings.Contains(l, fmt.Sprintf(" c%d ", i)) {
					line = l
				}
			}
			if !want.MatchString(line) {
				t.Errorf("ps -s line of c%d: %q, want SIZE %dkB (virtual ...MB)", i, line, i+1)
			}
		}
		if layers, _ := os.ReadDir(filepath.Join(e.store, "layers")); len(layers) != 1 {
			t.Errorf("layers/ holds %d layers, want busybox's only: five containers share it", len(layers))
		}
		for i := 0; i < 5; i++ {
			mustSucceed(t, "rm", e.u("rm", fmt.Sprintf("c%d", i)))
		}
	})

	subtest("signals", func(t *testing.T, e *containerEnv) {
		cmd := e.command("run", "--rm", "busybox", "sh", "-c", `trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done`)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		if !lines.Scan() || lines.Text() != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("first line %q", lines.Text())
		}
		cmd.Process.Signal(syscall.SIGTERM)
		lines.Scan()
		got := lines.Text()
		err := cmd.Wait()
		if got != "got TERM" || cmd.ProcessState.ExitCode() != 7 {
			t.Errorf("after SIGTERM: %q, %v; want got TERM and exit 7", got, err)
		}
	})

	subtest("published ports", func(t *testing.T, e *containerEnv) {
		port := freePort(t)
		pub := fmt.Sprintf("127.0.0.1:%d:8080", port)
		script := "mkdir -p /www && echo hello from the container > /www/index.html && exec httpd -f -p 8080 -h /www"
		mustSucceed(t, "run -d -p", e.u("run", "-d", "--name", "pub", "-p", pub, "busybox", "sh", "-c", script))
		defer e.u("rm", "-f", "pub")
		var body string
		var lastErr error
		defer func() {
			if t.Failed() {
				t.Logf("last GET error: %v\nps -a: %s\nlogs: %+v\nexec wget: %+v", lastErr, e.u("ps", "-a").stdout, e.u("logs", "pub"), e.u("exec", "pub", "wget", "-q", "-O-", "http://127.0.0.1:8080/"))
			}
		}()
		waitFor(t, func() bool {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
			if lastErr = err; err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			return resp.StatusCode == http.StatusOK
		})
		if body != "hello from the container\n" {
			t.Errorf("GET through the published port: %q", body)
		}
		// Again: rootless, the first connection's socket may be made by a
		// thread that cannot leave the container's namespace; that must not
		// touch the container (it was killed, exit 137) nor the next one.
		for i := 0; i < 3; i++ {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
			if err != nil {
				t.Fatalf("GET %d through the published port: %v", i+2, err)
			}
			resp.Body.Close()
		}
		if ps := e.u("ps"); !regexp.MustCompile(fmt.Sprintf(`Up .*\s127\.0\.0\.1:%d->8080/tcp\s+pub\n`, port)).MatchString(ps.stdout) {
			t.Errorf("ps does not show the port:\n%s", ps.stdout)
		}
		// A port that is taken: docker's 125, the reason, nothing left.
		expect(t, "run -p on a taken port", e.u("run", "--name", "pub2", "-p", pub, "busybox", "true"), 125, "", "address already in use")
		if ps := e.u("ps", "-a"); strings.Contains(ps.stdout, "pub2") {
			t.Errorf("a container is left after the failed run:\n%s", ps.stdout)
		}
		expect(t, "run -p with a bad port", e.u("run", "--rm", "-p", "8o", "busybox", "true"), 125, "", "invalid publish")
		expect(t, "port", e.u("port", "pub"), 0, fmt.Sprintf("8080/tcp -> 127.0.0.1:%d\n", port), "")
		// No host port: the kernel picks one; port and ps tell which.
		mustSucceed(t, "run -d -p CONTAINERPORT", e.u("run", "-d", "--name", "pubr", "-p", "127.0.0.1::8080", "busybox", "sh", "-c", script))
		defer e.u("rm", "-f", "pubr")
		r := e.u("port", "pubr", "8080")
		host := strings.TrimSpace(r.stdout)
		if r.code != 0 || !regexp.MustCompile(`^127\.0\.0\.1:[1-9]\d*$`).MatchString(host) {
			t.Fatalf("port pubr 8080: exit %d, %q, %q", r.code, r.stdout, r.stderr)
		}
		waitFor(t, func() bool {
			resp, err := http.Get("http://" + host + "/")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		if ps := e.u("ps"); !strings.Contains(ps.stdout, host+"->8080/tcp") {
			t.Errorf("ps does not show %s:\n%s", host, ps.stdout)
		}
		expect(t, "port of an unpublished port", e.u("port", "pubr", "81"), 1, "", "no public port")
		expect(t, "run -p sctp", e.u("run", "--rm", "-p", "8053:53/sctp", "busybox", "true"), 125, "", "only tcp and udp")
		expect(t, "stop", e.u("stop", "-t", "1", "pub"), 0, "pub\n", "")
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
			t.Errorf("the port is still taken after stop: %v", err)
		} else {
			l.Close()
		}
	})

	subtest("terminal", func(t *testing.T, e *containerEnv) {
		r := e.u("run", "--rm", "-t", "busybox", "sh", "-c", "tty; echo $TERM")
		if r.code != 0 || !regexp.MustCompile(`^/dev/pts/\d+\r\nxterm\r\n$`).MatchString(r.stdout) {
			t.Errorf("run -t: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		cmd := e.command("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z")
		cmd.Stdin = strings.NewReader("piped in\n")
		expect(t, "run -i", run(t, cmd), 0, "PIPED IN\n", "")
	})

	subtest("killed monitor and FUSE server", func(t *testing.T, e *containerEnv) {
		for _, victim := range []string{"monitor", "fuse"} {
			r := e.u("run", "-d", "--name", victim, "busybox", "sleep", "1000")
			mustSucceed(t, "run -d", r)
			id := strings.TrimSpace(r.stdout)
			state := readState(t, e.store, id)
			pid := state.Pid
			switch victim {
			case "monitor":
				pid = parentOf(t, state.Pid)
			case "fuse":
				pid = fuseServerOf(t, filepath.Join(e.store, "containers", id, "merged"))
			}
			syscall.Kill(pid, syscall.SIGKILL)
			// Killed by its monitor's end (137), or, once its FUSE server
			// is gone, by the monitor or by a SIGBUS (135) when the
			// command's mapped binary can no longer be paged in.
			exited := regexp.MustCompile(`Exited \((137|135)\)`)
			waitFor(t, func() bool { return exited.MatchString(e.u("ps", "-a").stdout) })
			waitFor(t, func() bool { return !isMounted(filepath.Join(e.store, "containers", id, "merged")) })
			expect(t, "rm after "+victim+" was killed", e.u("rm", victim), 0, victim+"\n", "")
		}
	})

	subtest("build", func(t *testing.T, e *containerEnv) {
		// The builder as the same user: COPY, RUN (a container of its
		// own), CMD; a rebuild comes from the cache.
		ctxDir := filepath.Join(e.dir, "buildctx")
		os.MkdirAll(ctxDir, 0o755)
		os.WriteFile(filepath.Join(ctxDir, "greeting"), []byte("hello from the context\n"), 0o644)
		os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM busybox\nCOPY greeting /greeting\nRUN echo built by $(id -u) > /built && mkdir -p /data && rm /bin/true\nCMD [\"cat\", \"/greeting\", \"/built\"]\n"), 0o644)
		if rootless {
			filepath.Walk(ctxDir, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, nobody, nobody) })
		}
		mustSucceed(t, "build", e.u("build", "-t", "built:1", ctxDir))
		expect(t, "run the built image", e.u("run", "--rm", "built:1"), 0, "hello from the context\nbuilt by 0\n", "")
		expect(t, "a whiteout from RUN", e.u("run", "--rm", "built:1", "sh", "-c", "test -e /bin/true || echo gone"), 0, "gone\n", "")
		r := e.u("build", "-t", "built:2", ctxDir)
		mustSucceed(t, "rebuild", r)
		if strings.Count(r.stdout, "Using cache") != 3 {
			t.Errorf("rebuild: want COPY, RUN and CMD from the cache:\n%s", r.stdout)
		}
		mustSucceed(t, "rmi", e.u("rmi", "built:1", "built:2"))
	})
}

// parentOf returns the parent of pid.
func parentOf(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// containerState is the part of containers/<id>/state.json tests read.
type containerState struct {
	Pid int
}

func readState(t *testing.T, store, id string) containerState {
	b, err := os.ReadFile(filepath.Join(store, "containers", id, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s containerState
	m := regexp.MustCompile(`"Pid": (\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("state.json without a pid: %s", b)
	}
	s.Pid, _ = strconv.Atoi(string(m[1]))
	return s
}

// fuseServerOf returns the pid of the FUSE server whose /dev/fuse
// connection serves merged: the process holding /dev/fuse open whose
// command line names merged.
func fuseServerOf(t *testing.T, merged string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(cmdline, []byte("daemon\x00"+merged)) {
			return pid
		}
	}
	t.Fatalf("no FUSE server for %s", merged)
	return 0
}

// waitFor polls cond for up to 30 seconds (what takes a moment on an
// idle machine can take ten times that on a busy one).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkTerminalSize runs `command -it args... sh -c ...` (exec into a
// container or run an image) on a terminal of the test's own and checks
// that the container's terminal has its size when the command starts and
// after a resize (SIGWINCH), as docker's -it does.
func checkTerminalSize(t *testing.T, e *containerEnv, command string, args ...string) {
	t.Helper()
	ptm, pts, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptm.Close()
	pty.Setsize(ptm, &pty.Winsize{Rows: 21, Cols: 71})
	cmd := e.command(append(append([]string{command, "-it"}, args...), "sh", "-c", "stty size; read x; stty size")...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var out bytes.Buffer
	var mu sync.Mutex
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := ptm.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	seen := func(s string) bool {
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			ok := strings.Contains(out.String(), s)
			mu.Unlock()
			if ok {
				return true
			}
		}
		return false
	}
	defer func() {
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	if !seen("21 71") {
		t.Errorf("%s -it on a 21x71 terminal: the container's terminal said %q", command, out.String())
		return
	}
	pty.Setsize(ptm, &pty.Winsize{Rows: 33, Cols: 99})
	cmd.Process.Signal(syscall.SIGWINCH)
	time.Sleep(100 * time.Millisecond)
	ptm.Write([]byte("\r"))
	if !seen("33 99") {
		t.Errorf("%s -it after a resize to 33x99: the container's terminal said %q", command, out.String())
	}
}

// freePort returns a TCP port of 127.0.0.1 that nobody listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
