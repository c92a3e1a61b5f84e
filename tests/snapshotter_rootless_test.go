package tests

// The unionfuse snapshotter as a rootless containerd runs it: as root of
// a user namespace that maps an unprivileged user to root and its
// subordinate ids to the others (rootlesskit's setup; here `unshare
// --map-root-user --map-auto` as uid 65534). This test binary starts a copy of
// itself that way, which runs containerd's conformance suite against the
// snapshotter in process, its unions served by a union server in the same
// namespaces, and checks that the unions use user.overlay.* attributes.

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots/testsuite"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/snapshotter"
	"golang.org/x/sys/unix"
)

// inUserNSEnv marks the copy of the test binary that runs inside the
// user namespace.
const inUserNSEnv = "UNIONFUSE_TEST_SNAPSHOTTER_IN_USERNS"

func TestSnapshotterRootless(t *testing.T) {
	if os.Getenv(inUserNSEnv) != "" {
		snapshotterInUserNS(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("sets up the unprivileged user's directories and /dev/fuse as root")
	}
	requireTools(t, "setpriv", "unshare", "newuidmap")
	helper := unionfuseBinary(t) + daemon.HelperSuffix
	openFuseDevice(t)
	dir := worldDir(t)
	bin := filepath.Join(dir, "bin")
	for _, d := range []string{bin, filepath.Join(dir, "tmp"), filepath.Join(dir, "run")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The build directories are private to root: nobody runs copies.
	copyExecutable(t, self, filepath.Join(bin, "tests.test"))
	copyExecutable(t, helper, filepath.Join(bin, snapshotter.DefaultMountHelper))

	// rootlesskit's mapping: the user is root, its subordinate ids are
	// 1-65535 (the suite chowns files to other users).
	ids := addSubIDs(t, "nobody", 600000, 65536)
	argv := ids.with("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "unshare", "--map-root-user", "--map-auto", "--mount",
		filepath.Join(bin, "tests.test"), "-test.run", "^TestSnapshotterRootless$", "-test.v", "-test.timeout", "5m")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), inUserNSEnv+"=1",
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"TMPDIR="+filepath.Join(dir, "tmp"), "XDG_RUNTIME_DIR="+filepath.Join(dir, "run"), "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestSnapshotterRootless") {
		t.Fatalf("the suite in a user namespace as uid %d: %v\n%s", nobody, err, lastLines(string(out), 60))
	}
	if locks, _ := filepath.Glob(filepath.Join(dir, "run", "unionfuse", "unions-*.lock")); len(locks) > 0 {
		t.Errorf("union servers still listen after the suite: %v", locks)
	}
}

// copyExecutable copies the program src to dst, runnable by all.
func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// snapshotterInUserNS is the test inside the user namespace: the
// conformance suite, then a container's rm -r and mkdir of a lower
// directory, whose opaque marker must be user.overlay.opaque.
func snapshotterInUserNS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatalf("inside the user namespace as uid %d, want its root", os.Geteuid())
	}
	testsuite.SnapshotterSuite(t, "unionfuse-rootless", suiteSnapshotter)

	dir := t.TempDir()
	root, target := filepath.Join(dir, "root"), filepath.Join(dir, "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	sn, done, err := suiteSnapshotter(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := done(); err != nil {
			t.Error(err)
		}
	}()
	s := sn.(*snapshotter.Snapshotter)
	layerWith(t, s, target, "base", "d/x")
	prepareMounted(t, s, "c1", "base", target)
	defer mount.UnmountAll(target, unix.MNT_DETACH)
	if err := os.RemoveAll(filepath.Join(target, "d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(target, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mount.UnmountAll(target, 0); err != nil {
		t.Fatal(err)
	}
	uppers, _ := filepath.Glob(filepath.Join(root, "snapshots", "*", "fs", "d"))
	var marked int
	for _, d := range uppers {
		if v, err := getXattr(d, "user.overlay.opaque"); err == nil && v == "y" {
			marked++
		}
	}
	if marked != 1 {
		t.Errorf("directories d marked user.overlay.opaque=y in the uppers %v: %d, want 1 (userxattr as root of a user namespace)", uppers, marked)
	}
	if err := s.Remove(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
}
