package tests

// containerd's snapshotter conformance suite (core/snapshots/testsuite),
// the one containerd runs against its overlayfs and native snapshotters,
// run against the unionfuse snapshotter: in process, and through its gRPC
// service with containerd's proxy client, as containerd itself talks to
// it. The suite mounts what the snapshotter returns with containerd's
// mount package, which runs mount.fuse3, which runs the unionfuse binary
// found through PATH: the same path a real containerd takes.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/proxy"
	"github.com/containerd/containerd/v2/core/snapshots/testsuite"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/mountinfo"
	"github.com/unionfuse/unionfuse/internal/unionserver"
	"github.com/unionfuse/unionfuse/snapshotter"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestSnapshotterConformance(t *testing.T) {
	needSnapshotterMounts(t)
	t.Parallel()
	testsuite.SnapshotterSuite(t, "unionfuse", suiteSnapshotter)
}

// suiteSnapshotter opens the snapshotter at root for the conformance
// suite; its cleanup fails on a mount left under root's directory or a
// union server still running once the suite's unions are detached.
func suiteSnapshotter(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
	sn, err := snapshotter.New(root)
	if err != nil {
		return nil, nil, err
	}
	return sn, func() error {
		return errors.Join(sn.Close(), detachUnions(root), mountsLeftUnder(filepath.Dir(root)), unionServerGone(root))
	}, nil
}

// proxySuiteEnv names the environment variable that runs the conformance
// suite a second time, through the gRPC service: its 128-layer case
// alone takes a minute on a loaded 2-CPU machine, and make test's
// tests package already nears its time limit there. containerd's own
// proxy client is exercised in make test by tests/containerd_test.go.
const proxySuiteEnv = "UNIONFUSE_SNAPSHOTTER_PROXY_SUITE"

func TestSnapshotterConformanceProxy(t *testing.T) {
	if os.Getenv(proxySuiteEnv) == "" {
		t.Skipf("set %s=1 to run the suite through the gRPC service too (passes; left out of make test for time)", proxySuiteEnv)
	}
	needSnapshotterMounts(t)
	t.Parallel()
	testsuite.SnapshotterSuite(t, "unionfuse", func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
		sn, err := snapshotter.New(root)
		if err != nil {
			return nil, nil, err
		}
		sock := filepath.Join(filepath.Dir(root), "snapshotter.sock")
		l, err := snapshotter.Listen(sock)
		if err != nil {
			sn.Close()
			return nil, nil, err
		}
		ctx, stop := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- snapshotter.Serve(ctx, sn, l) }()
		conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			stop()
			<-served
			sn.Close()
			return nil, nil, err
		}
		client := proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), "unionfuse")
		return client, func() error {
			errs := []error{client.Close(), conn.Close()}
			stop()
			errs = append(errs, <-served, sn.Close(), detachUnions(root), mountsLeftUnder(filepath.Dir(root)), unionServerGone(root))
			return errors.Join(errs...)
		}, nil
	})
}

// needSnapshotterMounts skips t unless it can mount what the snapshotter
// returns (bind mounts need root; mount.fuse3 runs the helper) and puts
// the unionfuse binary on PATH under its own name, where mount.fuse3
// looks for it.
func needSnapshotterMounts(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the snapshotter suite mounts (bind and FUSE): needs root")
	}
	if _, err := exec.LookPath("mount.fuse3"); err != nil {
		t.Skip("needs mount.fuse3 (Debian's fuse3; make deps installs it)")
	}
	unionfuseOnPath(t)
}

var (
	pathOnce sync.Once
	pathErr  error
)

// unionfuseOnPath puts the test build of unionfuse first on this test
// process's PATH, named unionfuse (a link in bin/path/), and its small
// serving binary as unionfuse-fuse, where mount.fuse3 looks for them. Set once for the process and left set: the tests that
// need it run in parallel, which t.Setenv forbids.
func unionfuseOnPath(t *testing.T) {
	t.Helper()
	bin := unionfuseBinary(t)
	pathOnce.Do(func() {
		dir := filepath.Join(filepath.Dir(bin), "path")
		link := filepath.Join(dir, "unionfuse")
		if pathErr = os.MkdirAll(dir, 0o755); pathErr != nil {
			return
		}
		os.Remove(link)
		if pathErr = os.Symlink(bin, link); pathErr != nil {
			return
		}
		// The small serving binary, the snapshotter's default helper.
		helper := filepath.Join(dir, snapshotter.DefaultMountHelper)
		os.Remove(helper)
		if pathErr = os.Symlink(bin+daemon.HelperSuffix, helper); pathErr != nil {
			return
		}
		pathErr = os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	})
	if pathErr != nil {
		t.Fatalf("unionfuse on PATH: %v", pathErr)
	}
}

// mountsLeftUnder unmounts (lazily) whatever is still mounted below dir
// and says what it was.
func mountsLeftUnder(dir string) error {
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil
	}
	below, err := mountinfo.Below(dir)
	if err != nil {
		return err
	}
	if len(below) == 0 {
		return nil
	}
	for i := len(below) - 1; i >= 0; i-- {
		unix.Unmount(below[i], unix.MNT_DETACH)
	}
	return fmt.Errorf("left mounted: %v", below)
}

// detachUnions detaches the unions that the union server of the
// snapshotter at root still serves: those of the snapshots the suite
// leaves active (a union lives until its snapshot is committed or
// removed, or its server stops).
func detachUnions(root string) error {
	merged, err := filepath.Glob(filepath.Join(root, "snapshots", "*", "merged"))
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range merged {
		errs = append(errs, unionserver.Detach(m))
	}
	return errors.Join(errs...)
}

// unionServerGone waits until the union server of the snapshotter at
// root, if one was started, has exited: it does once it serves no union
// and its snapshotter has hung up (unionserver.IdleExit).
func unionServerGone(root string) error {
	b, err := os.ReadFile(unionserver.PidFile(filepath.Join(root, "snapshots")))
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("union server pid file: %w", err)
	}
	if !eventually(5*unionserver.IdleExit, func() bool { return !processAlive(pid) }) {
		unix.Kill(pid, unix.SIGKILL)
		return fmt.Errorf("the union server %d still runs after its snapshotter closed and its unions went", pid)
	}
	return nil
}

// snapshotterForTest opens a snapshotter in a fresh directory for t,
// with unionfuse on PATH, and closes it when t ends; target is an empty
// directory to mount on.
func snapshotterForTest(t *testing.T) (sn *snapshotter.Snapshotter, root, target string) {
	t.Helper()
	needSnapshotterMounts(t)
	dir := testDir(t)
	root, target = filepath.Join(dir, "root"), filepath.Join(dir, "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	sn, err := snapshotter.New(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sn.Close()
		if err := errors.Join(detachUnions(root), unionServerGone(root)); err != nil {
			t.Error(err)
		}
	})
	return sn, root, target
}

// layerWith commits a layer holding the file name (content name, a
// slash-separated path: its directories too) on sn, as containerd
// unpacks one: Prepare, write through the bind mount, Commit.
func layerWith(t *testing.T, sn snapshots.Snapshotter, target, key, name string) {
	t.Helper()
	prepareMounted(t, sn, key+"-unpack", "", target)
	werr := os.MkdirAll(filepath.Dir(filepath.Join(target, name)), 0o755)
	if werr == nil {
		werr = os.WriteFile(filepath.Join(target, name), []byte(name), 0o644)
	}
	if err := mount.UnmountAll(target, 0); err != nil {
		t.Fatal(err)
	}
	if werr != nil {
		t.Fatal(werr)
	}
	if err := sn.Commit(context.Background(), key, key+"-unpack"); err != nil {
		t.Fatal(err)
	}
}

// prepareMounted prepares the active snapshot key on parent and mounts it
// on target.
func prepareMounted(t *testing.T, sn snapshots.Snapshotter, key, parent, target string) {
	t.Helper()
	mounts, err := sn.Prepare(context.Background(), key, parent)
	if err != nil {
		t.Fatal(err)
	}
	if err := mount.All(mounts, target); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotterRemoveWhileMounted removes an active snapshot whose
// union is mounted, as a client that does not unmount first would: the
// removal goes through (as the overlayfs snapshotter's), the union fails
// its users instead of hanging, and it still unmounts, leaving nothing.
func TestSnapshotterRemoveWhileMounted(t *testing.T) {
	sn, root, target := snapshotterForTest(t)
	ctx := context.Background()
	layerWith(t, sn, target, "base", "f")
	prepareMounted(t, sn, "c1", "base", target)
	defer mount.UnmountAll(target, unix.MNT_DETACH)
	if b, err := os.ReadFile(filepath.Join(target, "f")); err != nil || string(b) != "f" {
		t.Fatalf("read through the union: %q, %v", b, err)
	}
	if err := sn.Remove(ctx, "c1"); err != nil {
		t.Fatalf("remove a mounted active snapshot: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- os.WriteFile(filepath.Join(target, "g"), []byte("g"), 0o644) }()
	select {
	case err := <-done:
		if err == nil {
			t.Log("a write after its upper was removed succeeded (into the removed directory)")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a write to a union whose snapshot was removed hangs")
	}
	if err := mount.UnmountAll(target, 0); err != nil {
		t.Fatalf("unmount after the removal: %v", err)
	}
	if err := sn.Remove(ctx, "base"); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "snapshots")); len(ents) != 0 {
		t.Errorf("snapshots/ holds %d entries after removing every snapshot", len(ents))
	}
}

// TestSnapshotterFullDisk runs the snapshotter on a 4 MiB tmpfs: a
// container's write that does not fit fails with ENOSPC (not EIO), and
// with the disk full Prepare fails with nothing left behind, or
// succeeds; once space is freed, it works again.
func TestSnapshotterFullDisk(t *testing.T) {
	sn0, root0, target := snapshotterForTest(t)
	sn0.Close()
	os.RemoveAll(root0)
	disk := filepath.Join(filepath.Dir(root0), "disk")
	if err := os.Mkdir(disk, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", disk, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("mount a small tmpfs: %v", err)
	}
	defer unix.Unmount(disk, unix.MNT_DETACH)
	sn, err := snapshotter.New(filepath.Join(disk, "root"))
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	ctx := context.Background()
	layerWith(t, sn, target, "base", "f")
	prepareMounted(t, sn, "c1", "base", target)
	werr := os.WriteFile(filepath.Join(target, "big"), make([]byte, 8<<20), 0o644)
	if err := mount.UnmountAll(target, 0); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(werr, unix.ENOSPC) {
		t.Errorf("writing 8 MiB into a union on a 4 MiB disk: %v, want ENOSPC", werr)
	}
	// The disk is full now (the container's upper holds what fitted).
	before, _ := os.ReadDir(filepath.Join(disk, "root", "snapshots"))
	if _, err := sn.Prepare(ctx, "c2", "base"); err != nil {
		after, _ := os.ReadDir(filepath.Join(disk, "root", "snapshots"))
		if len(after) != len(before) {
			t.Errorf("a failed Prepare on a full disk left %d directories (%d before)", len(after), len(before))
		}
		if _, err := sn.Stat(ctx, "c2"); err == nil {
			t.Error("a failed Prepare on a full disk left its snapshot recorded")
		}
	} else if err := sn.Remove(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	if err := sn.Remove(ctx, "c1"); err != nil {
		t.Fatalf("remove on a full disk: %v", err)
	}
	if _, err := sn.Prepare(ctx, "c3", "base"); err != nil {
		t.Fatalf("prepare once space is freed: %v", err)
	}
}

// TestSnapshotterCommandWithoutItsBinary runs the CLI alone, without
// unionfuse-snapshotter beside it: `unionfuse snapshotter` fails with one
// line naming the missing binary, and its help still prints.
func TestSnapshotterCommandWithoutItsBinary(t *testing.T) {
	alone := filepath.Join(t.TempDir(), "unionfuse")
	data, err := os.ReadFile(unionfuseBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, data, 0o755); err != nil {
		t.Fatal(err)
	}
	r := run(t, exec.Command(alone, "snapshotter", "--address", filepath.Join(t.TempDir(), "s.sock")))
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "unionfuse-snapshotter is not installed") {
		t.Errorf("without its binary: exit %d, stderr %q; want 1 and one line naming the binary", r.code, r.stderr)
	}
	if r := run(t, exec.Command(alone, "snapshotter", "--help")); r.code != 0 || !strings.Contains(r.stdout, "Usage: unionfuse snapshotter") {
		t.Errorf("help without its binary: exit %d, stdout %q", r.code, r.stdout)
	}
}
