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
	"sync"
	"testing"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/proxy"
	"github.com/containerd/containerd/v2/core/snapshots/testsuite"
	"github.com/unionfuse/unionfuse/internal/mountinfo"
	"github.com/unionfuse/unionfuse/snapshotter"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestSnapshotterConformance(t *testing.T) {
	needSnapshotterMounts(t)
	t.Parallel()
	testsuite.SnapshotterSuite(t, "unionfuse", func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
		sn, err := snapshotter.New(root)
		if err != nil {
			return nil, nil, err
		}
		return sn, func() error {
			return errors.Join(sn.Close(), mountsLeftUnder(filepath.Dir(root)))
		}, nil
	})
}

func TestSnapshotterConformanceProxy(t *testing.T) {
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
			errs = append(errs, <-served, sn.Close(), mountsLeftUnder(filepath.Dir(root)))
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
// process's PATH, named unionfuse (a link in bin/path/), where mount.fuse3
// looks for it. Set once for the process and left set: the tests that
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
		pathErr = os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	})
	if pathErr != nil {
		t.Fatalf("unionfuse on PATH: %v", pathErr)
	}
}

// mountsLeftUnder unmounts (lazily) whatever is still mounted below dir
// and says what it was.
func mountsLeftUnder(dir string) error {
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
