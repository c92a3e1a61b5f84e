package tests

// podman with unionfuse as its overlay mount_program, end to end: a busybox
// image imported into a store kept in a temporary directory, containers
// that write, delete and modify files (checked in the container's upper
// directory), and a two-stage build whose rebuild comes from the cache.

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// podmanImage is the image the tests run: the busybox root filesystem
// imported, plus a committed layer with /opt/pkg/a and /opt/pkg/b.
const podmanImage = "localhost/unionfuse-busybox:test"

// podmanChanges is what the containers of TestPodman do to podmanImage:
// create, append to a lower file, delete a lower file, make and remove a
// directory, replace a lower directory, rename a lower symlink.
const podmanChanges = `echo new > /tmp/new
echo more >> /etc/passwd
rm /bin/vi
mkdir -p /d/e && echo x > /d/e/f && rm -r /d/e
rm -r /opt/pkg && mkdir /opt/pkg && echo c > /opt/pkg/c
mv /bin/ls /bin/ls2`

// podman runs podman with its whole configuration and store below one
// temporary directory and unionfuse as the overlay mount program.
type podman struct {
	dir string
	env []string
}

// requirePodman skips t unless podman, runc and conmon are installed, the
// busybox at busyboxPath is static and t runs as root with /dev/fuse.
func requirePodman(t *testing.T) {
	t.Helper()
	testutil.RequireFuse(t)
	for _, prog := range []string{"podman", "runc", "conmon"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("needs %s (make deps installs podman, runc and uidmap): %v", prog, err)
		}
	}
	f, err := elf.Open(busyboxPath)
	if err != nil {
		t.Skipf("needs Debian's busybox-static for the image: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Skipf("needs a static busybox (Debian's busybox-static): %s is dynamically linked", busyboxPath)
		}
	}
}

// podmanContainersConf is the containers.conf of a podman confined to dir:
// runc, cgroupfs, no network, ulimits this machine allows, its events,
// network configuration and temporary files below dir.
func podmanContainersConf(dir string) string {
	return fmt.Sprintf(`[containers]
netns = "none"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[network]
network_config_dir = %q

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
tmp_dir = %q
`, filepath.Join(dir, "net"), filepath.Join(dir, "tmp"))
}

// newPodman writes containers.conf, storage.conf and an empty
// registries.conf below a fresh temporary directory. When t ends it resets
// that store with podman itself (which unmounts what podman mounted and
// removes the read-only layer directories), then fails t for, and kills,
// any process still running from the directory: a unionfuse daemon that
// outlived its mount, or a container.
func newPodman(t *testing.T, mountProgram string) *podman {
	t.Helper()
	dir := testDir(t)
	containersConf := podmanContainersConf(dir)
	storageConf := fmt.Sprintf(`[storage]
driver = "overlay"
graphroot = %q
runroot = %q

[storage.options.overlay]
mount_program = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "runroot"), mountProgram)
	files := map[string]string{
		"containers.conf": containersConf,
		"storage.conf":    storageConf,
		"registries.conf": "",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := &podman{dir: dir, env: append(os.Environ(),
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"),
	)}
	t.Cleanup(func() {
		if r := p.run(t, "system", "reset", "-f"); r.code != 0 {
			t.Errorf("podman system reset: exit %d: %s", r.code, r.stderr)
		}
		for _, pid := range processesMentioning(dir) {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			t.Errorf("process %d still running at the end of the test: %q", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return p
}

// run runs podman with args.
func (p *podman) run(t testing.TB, args ...string) result {
	t.Helper()
	cmd := exec.Command("podman", args...)
	cmd.Env = p.env
	cmd.Dir = p.dir
	return run(t, cmd)
}

// mustRun runs podman with args, fails t unless it succeeds and returns
// its stdout.
func (p *podman) mustRun(t testing.TB, args ...string) string {
	t.Helper()
	r := p.run(t, args...)
	if r.code != 0 {
		t.Fatalf("podman %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// processesMentioning returns the processes (other than this one) whose
// command line mentions dir.
func processesMentioning(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(dir)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestPodman runs podman 4 with unionfuse as its mount_program: run, the
// container's upper directory, podman mount, and a cached two-stage build.
func TestPodman(t *testing.T) {
	requirePodman(t)
	p := newPodman(t, unionfuseBinary(t))
	start := time.Now()
	p.mustRun(t, "import", "-q", busyboxFile(t), podmanImage+"-base")
	p.mustRun(t, "run", "--name", "base", podmanImage+"-base", "sh", "-c", "mkdir -p /opt/pkg && echo a > /opt/pkg/a && echo b > /opt/pkg/b")
	p.mustRun(t, "commit", "-q", "base", podmanImage)
	p.mustRun(t, "rm", "base")

	t.Run("run --rm", func(t *testing.T) {
		const script = `set -e
awk '$2 == "/" {print $3}' /proc/mounts
` + podmanChanges + `
cat /tmp/new
tail -n 1 /etc/passwd
test ! -e /bin/vi && test ! -e /bin/ls && test -L /bin/ls2
busybox ls /d /opt/pkg`
		got := p.mustRun(t, "run", "--rm", podmanImage, "sh", "-c", script)
		want := "fuse.unionfuse\nnew\nmore\n/d:\n\n/opt/pkg:\nc\n"
		if got != want {
			t.Errorf("container printed %q, want %q", got, want)
		}
		if ids := p.mustRun(t, "ps", "-aq"); ids != "" {
			t.Errorf("podman ps -a after run --rm: %q", ids)
		}
	})

	t.Run("upper", func(t *testing.T) {
		const script = "set -e\n" + podmanChanges + "\nchmod 700 /bin/busybox"
		p.mustRun(t, "run", "--name", "uppertest", podmanImage, "sh", "-c", script)
		upper := strings.TrimSpace(p.mustRun(t, "inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", "uppertest"))
		lowers := strings.Split(strings.TrimSpace(p.mustRun(t, "inspect", "--format", "{{.GraphDriver.Data.LowerDir}}", "uppertest")), ":")
		if upper == "" || len(lowers) != 2 {
			t.Fatalf("podman inspect: upper %q, lowers %q (want the committed layer and busybox)", upper, lowers)
		}
		checkContainerUpper(t, upper, lowers[0], lowers[1])

		merged := strings.TrimSpace(p.mustRun(t, "mount", "uppertest"))
		if got, err := os.ReadFile(filepath.Join(merged, "etc/passwd")); err != nil || string(got) != "root:x:0:0:root:/root:/bin/sh\nmore\n" {
			t.Errorf("podman mount: etc/passwd = %q, %v", got, err)
		}
		if names := readNames(t, filepath.Join(merged, "opt/pkg")); names != "c" {
			t.Errorf("podman mount: opt/pkg lists %q, want c", names)
		}
		p.mustRun(t, "umount", "uppertest")
		if isMounted(merged) {
			t.Errorf("%s still mounted after podman umount", merged)
		}
		p.mustRun(t, "rm", "uppertest")
		if _, err := os.Stat(upper); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("upper %s after podman rm: %v", upper, err)
		}
	})

	t.Run("build", func(t *testing.T) {
		ctx := filepath.Join(p.dir, "context")
		containerfile := `FROM ` + podmanImage + ` AS build
COPY hello.txt /src/hello.txt
RUN mkdir /out && tr a-z A-Z < /src/hello.txt > /out/HELLO && rm /bin/vi && echo built > /out/stamp

FROM ` + podmanImage + `
COPY --from=build /out /app
RUN test ! -e /src && rm /bin/vi && rm -r /opt/pkg && echo second > /app/second
CMD ["cat", "/app/HELLO"]
`
		if err := os.MkdirAll(ctx, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string]string{"Containerfile": containerfile, "hello.txt": "hello world\n"} {
			if err := os.WriteFile(filepath.Join(ctx, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		const tag = "localhost/unionfuse-built:test"
		p.mustRun(t, "build", "-t", tag, ctx)
		if got := p.mustRun(t, "run", "--rm", tag); got != "HELLO WORLD\n" {
			t.Errorf("the built image's CMD printed %q, want %q", got, "HELLO WORLD\n")
		}
		// The RUN steps' deletions are .wh. files in the committed layers.
		got := p.mustRun(t, "run", "--rm", tag, "sh", "-c", "ls /app; test ! -e /bin/vi && test ! -e /opt/pkg && echo deleted")
		if want := "HELLO\nsecond\nstamp\ndeleted\n"; got != want {
			t.Errorf("the built image shows %q, want %q", got, want)
		}
		again := p.mustRun(t, "build", "-t", tag, ctx)
		if n := strings.Count(again, "Using cache"); n < 4 {
			t.Errorf("the rebuild used the cache %d times, want 4 (COPY, RUN, COPY, RUN):\n%s", n, again)
		}
	})
	t.Logf("podman tests took %v", time.Since(start).Round(time.Millisecond))
}

// checkContainerUpper checks the upper directory of the "upper" subtest's
// container, and that its image's layers (the committed layer with
// /opt/pkg, and busybox) did not change.
func checkContainerUpper(t *testing.T, upper, pkgLayer, lower string) {
	t.Helper()
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(upper, p))
		if err != nil {
			t.Errorf("upper: %v", err)
		}
		return string(b)
	}
	if got := read("tmp/new"); got != "new\n" {
		t.Errorf("upper/tmp/new = %q", got)
	}
	if got := read("etc/passwd"); got != "root:x:0:0:root:/root:/bin/sh\nmore\n" {
		t.Errorf("upper/etc/passwd = %q (copied up, then appended to)", got)
	}
	for _, name := range []string{"bin/vi", "bin/ls"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(upper, name), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("upper/%s is not a whiteout (char 0/0): mode %o rdev %d, %v", name, st.Mode, st.Rdev, err)
		}
		if _, err := os.Lstat(filepath.Join(lower, name)); err != nil {
			t.Errorf("lower/%s: %v (deleting in the container changed the image)", name, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(upper, "bin/ls2")); err != nil || target != "busybox" {
		t.Errorf("upper/bin/ls2 -> %q, %v; want -> busybox", target, err)
	}
	if names := readNames(t, filepath.Join(upper, "d")); names != "" {
		t.Errorf("upper/d lists %q; a directory made and removed in the container leaves nothing", names)
	}
	// /opt/pkg, removed and made again, hides the image's a and b: opaque,
	// or a whiteout for each.
	pkg := filepath.Join(upper, "opt/pkg")
	opaque := make([]byte, 8)
	n, _ := unix.Lgetxattr(pkg, "trusted.overlay.opaque", opaque)
	if n != 1 || opaque[0] != 'y' {
		if names := readNames(t, pkg); names != "a b c" {
			t.Errorf("upper/opt/pkg is not opaque and lists %q; want a b as whiteouts, and c", names)
		}
	}
	if got := read("opt/pkg/c"); got != "c\n" {
		t.Errorf("upper/opt/pkg/c = %q", got)
	}
	for _, l := range []string{filepath.Join(pkgLayer, "opt/pkg/a"), filepath.Join(pkgLayer, "opt/pkg/b")} {
		if _, err := os.Stat(l); err != nil {
			t.Errorf("image layer: %v", err)
		}
	}
	bb, err := os.Stat(filepath.Join(upper, "bin/busybox"))
	lowerBB, lerr := os.Stat(filepath.Join(lower, "bin/busybox"))
	switch {
	case err != nil || lerr != nil:
		t.Errorf("busybox: upper %v, lower %v", err, lerr)
	case bb.Mode().Perm() != 0o700 || bb.Size() != lowerBB.Size():
		t.Errorf("upper/bin/busybox after chmod 700: mode %v size %d; want 0700 and the lower's %d bytes", bb.Mode(), bb.Size(), lowerBB.Size())
	case lowerBB.Mode().Perm() != 0o755:
		t.Errorf("lower/bin/busybox mode changed to %v", lowerBB.Mode())
	}
}
