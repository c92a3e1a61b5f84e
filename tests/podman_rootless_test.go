package tests

// Rootless podman with unionfuse as its mount_program: podman runs the
// mount program inside its own user namespace (subordinate ids from
// /etc/subuid, as addSubIDs shows it to podman), where unionfuse mounts
// directly.

import (
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

// TestPodmanRootless runs podman as uid 65534 with unionfuse as its
// mount program: a container writes and deletes files, and its upper
// directory holds them, and a whiteout, owned by the user.
func TestPodmanRootless(t *testing.T) { podmanRootless(t, false) }

// TestPodmanRootlessUnionServer is TestPodmanRootless with the
// containers' unions served by one union server in podman's namespaces
// (storage.conf's mountopt = "server=STORAGE"): no daemon per container,
// and the server gone once podman has unmounted them all.
func TestPodmanRootlessUnionServer(t *testing.T) { podmanRootless(t, true) }

// podmanRootless runs the rootless podman test, with the unions served by
// a union server for podman's storage when server is set.
func podmanRootless(t *testing.T, server bool) {
	requirePodman(t)
	testutil.RequireMounts(t)
	requireTools(t, "setpriv", "newuidmap", "newgidmap")
	bin := unionfuseBinary(t)
	rootfs := busyboxRootfs(t)
	openFuseDevice(t)
	ids := addSubIDs(t, "nobody", 500000, 65536)
	dir := worldDir(t)
	runDir := filepath.Join(dir, "run")
	for _, d := range []string{dir, runDir, filepath.Join(dir, "tmp"), filepath.Join(dir, "net")} {
		os.MkdirAll(d, 0o700)
		if err := os.Chown(d, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(dir, 0o755)
	mountopt := ""
	if server {
		mountopt = fmt.Sprintf("mountopt = %q\n", "server="+filepath.Join(dir, "storage"))
	}
	conf := map[string]string{
		"containers.conf": podmanContainersConf(dir),
		"storage.conf": fmt.Sprintf(`[storage]
driver = "overlay"
rootless_storage_path = %q
[storage.options.overlay]
mount_program = %q
%s`, filepath.Join(dir, "storage"), bin, mountopt),
		"registries.conf": "",
		"busybox.tar.gz":  string(rootfs),
	}
	for name, data := range conf {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	podman := func(args ...string) result {
		t.Helper()
		argv := ids.with(append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "podman"}, args...)...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_RUNTIME_DIR="+runDir,
			"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
			"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
			"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"))
		cmd.Dir = dir
		return run(t, cmd)
	}
	must := func(args ...string) string {
		t.Helper()
		r := podman(args...)
		if r.code != 0 {
			t.Fatalf("podman %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r.stdout
	}
	t.Cleanup(func() {
		if r := podman("system", "reset", "-f"); r.code != 0 {
			t.Errorf("podman system reset: exit %d: %s", r.code, r.stderr)
		}
		// Rootless podman keeps a pause process holding its user
		// namespace; this test started it.
		if b, err := os.ReadFile(filepath.Join(runDir, "libpod", "tmp", "pause.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		// A union server exits a moment after its last union is gone.
		eventually(5*time.Second, func() bool { return len(processesMentioning(dir)) == 0 })
		for _, pid := range processesMentioning(dir) {
			t.Errorf("process %d still running at the end of the test", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	must("import", "-q", filepath.Join(dir, "busybox.tar.gz"), "rootless-busybox")
	got := must("run", "--rm", "rootless-busybox", "sh", "-c",
		`id -u; echo hi > /x; cat /x; rm /bin/vi; test ! -e /bin/vi && echo gone; awk '$2 == "/" {print $3}' /proc/mounts`)
	if want := "0\nhi\ngone\nfuse.unionfuse\n"; got != want {
		t.Errorf("container printed %q, want %q", got, want)
	}
	must("run", "--name", "keep", "rootless-busybox", "sh", "-c", "echo data > /kept; rm /bin/ls")
	upper := strings.TrimSpace(must("inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", "keep"))
	var st unix.Stat_t
	if b, err := os.ReadFile(filepath.Join(upper, "kept")); err != nil || string(b) != "data\n" {
		t.Errorf("upper/kept: %q, %v", b, err)
	}
	if err := unix.Lstat(filepath.Join(upper, "kept"), &st); err != nil || st.Uid != nobody {
		t.Errorf("upper/kept: owner %d (%v), want the user, %d", st.Uid, err, nobody)
	}
	if err := unix.Lstat(filepath.Join(upper, "bin", "ls"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 || st.Uid != nobody {
		t.Errorf("upper/bin/ls is not the user's whiteout (char 0/0): %v, mode %o rdev %d uid %d", err, st.Mode, st.Rdev, st.Uid)
	}
	must("rm", "keep")

	// While two containers run, their unions are served by one union
	// server in podman's namespaces (started as `unionfuse-fuse STORAGE
	// SOCKET LOG`), or by a daemon each (`unionfuse daemon MERGED`).
	storage := filepath.Join(dir, "storage")
	for _, name := range []string{"one", "two"} {
		must("run", "-d", "--name", name, "rootless-busybox", "sleep", "60")
	}
	servers := serversOf(nobody, storage)
	daemons := processesMentioning("daemon\x00" + storage)
	if want := map[bool][2]int{false: {0, 2}, true: {1, 0}}[server]; len(servers) != want[0] || len(daemons) != want[1] {
		t.Errorf("two running containers: %d union servers, %d daemons; want %d and %d", len(servers), len(daemons), want[0], want[1])
	}
	must("rm", "-f", "-t", "0", "one", "two")
}
