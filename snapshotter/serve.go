package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/contrib/snapshotservice"
	"github.com/containerd/containerd/v2/core/snapshots"
	"google.golang.org/grpc"
)

// Listen opens the unix socket address for Serve, replacing a socket a
// previous snapshotter left (a stale one refuses connections; a live one
// is refused: two snapshotters on one socket would split containerd's
// requests between them).
func Listen(address string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(address), 0o711); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if st, err := os.Lstat(address); err == nil {
		if st.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("listen on %s: exists and is not a socket", address)
		}
		if c, err := net.Dial("unix", address); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen on %s: a snapshotter already serves it", address)
		}
		if err := os.Remove(address); err != nil {
			return nil, fmt.Errorf("listen on %s: %w", address, err)
		}
	}
	l, err := net.Listen("unix", address)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", address, err)
	}
	return l, nil
}

// Serve serves sn on l with containerd's gRPC snapshots API (the
// containerd.services.snapshots.v1.Snapshots service a proxy plugin
// speaks) until ctx is done, then stops, letting requests under way
// finish. It closes l.
func Serve(ctx context.Context, sn snapshots.Snapshotter, l net.Listener) error {
	srv := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(srv, snapshotservice.FromSnapshotter(sn))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve snapshots: %w", err)
	case <-ctx.Done():
	}
	srv.GracefulStop()
	if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve snapshots: %w", err)
	}
	return nil
}

// DefaultAddress is the socket Serve listens on when none is given:
// /run/unionfuse/snapshotter.sock as root, else under $XDG_RUNTIME_DIR
// (a rootless containerd's runtime directory).
func DefaultAddress() string {
	if os.Geteuid() != 0 {
		if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
			return filepath.Join(d, "unionfuse", "snapshotter.sock")
		}
	}
	return "/run/unionfuse/snapshotter.sock"
}
