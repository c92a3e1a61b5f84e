package snapshotter

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/storage"
	"github.com/containerd/continuity/fs"
	ufs "github.com/unionfuse/unionfuse/fs"
	"github.com/unionfuse/unionfuse/internal/unionserver"
)

// Snapshotter is a containerd snapshotter on unionfuse (see the package
// doc for its layout and mounts). Its methods are safe for concurrent
// use: each runs in one transaction of the metadata store.
type Snapshotter struct {
	root      string
	ms        *storage.MetaStore
	userxattr bool
	helper    string // the program mount.fuse3 runs (fuse3.HELPER): the helper form
	// unions serves the unions (the served form); nil in the helper form.
	unions *unionserver.Client
}

var (
	_ snapshots.Snapshotter = (*Snapshotter)(nil)
	_ snapshots.Cleaner     = (*Snapshotter)(nil)
)

// Opt configures a Snapshotter made by New.
type Opt func(*Snapshotter)

// WithUserXattr sets whether the unions it returns use the user.overlay.*
// extended attributes (mount option userxattr). The default is to use
// them when not running as root of the initial user namespace, as under a
// rootless containerd (rootlesskit's user namespace).
func WithUserXattr(on bool) Opt {
	return func(s *Snapshotter) { s.userxattr = on }
}

// WithMountHelper chooses the helper form: the unions are returned as
// mounts of type fuse3.NAME, which containerd performs by running
// mount.fuse3, which runs NAME. DefaultMountHelper is the small serving
// binary (the CLI when it is not on PATH); unionfuse, the CLI, works too
// but starts slower; any program that takes fuse-overlayfs's command
// line (fuse-overlayfs itself, for comparison) fits. Without it the
// snapshotter serves the unions itself (see the package doc).
func WithMountHelper(name string) Opt {
	return func(s *Snapshotter) { s.helper = name }
}

// New opens (creating it if need be) the snapshotter stored under root.
// The root's path goes into mount options, where ',' and ':' separate
// options and layers, so a root holding either is refused.
func New(root string, opts ...Opt) (*Snapshotter, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("snapshotter root %s: %w", root, err)
	}
	if strings.ContainsAny(abs, ",:") {
		return nil, fmt.Errorf("snapshotter root %s: a path with ',' or ':' cannot go into mount options", abs)
	}
	if err := os.MkdirAll(filepath.Join(abs, "snapshots"), 0o700); err != nil {
		return nil, fmt.Errorf("snapshotter root: %w", err)
	}
	ms, err := storage.NewMetaStore(filepath.Join(abs, "metadata.db"))
	if err != nil {
		return nil, fmt.Errorf("snapshotter metadata: %w", err)
	}
	// Root of a user namespace (a rootless containerd under rootlesskit)
	// may not write trusted.* attributes either.
	s := &Snapshotter{root: abs, ms: ms, userxattr: os.Geteuid() != 0 || !ufs.InInitialUserNS()}
	for _, o := range opts {
		o(s)
	}
	switch s.helper {
	case "":
		bin, err := unionserver.Binary()
		if err != nil {
			ms.Close()
			return nil, fmt.Errorf("snapshotter: the union server: %w", err)
		}
		s.unions = unionserver.NewClient(s.snapshotsDir(), filepath.Join(abs, "unions.log"), bin)
	case DefaultMountHelper:
		if _, err := exec.LookPath(DefaultMountHelper); err != nil {
			s.helper = FallbackMountHelper
		}
	}
	return s, nil
}

// Root returns the directory the snapshotter stores under.
func (s *Snapshotter) Root() string { return s.root }

// Stat returns the information of the snapshot key.
func (s *Snapshotter) Stat(ctx context.Context, key string) (info snapshots.Info, err error) {
	err = s.ms.WithTransaction(ctx, false, func(ctx context.Context) error {
		_, info, _, err = storage.GetInfo(ctx, key)
		return err
	})
	return info, err
}

// Update changes the mutable fields of a snapshot (its labels), all of
// them or those named by fieldpaths ("labels", "labels.NAME").
func (s *Snapshotter) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (out snapshots.Info, err error) {
	err = s.ms.WithTransaction(ctx, true, func(ctx context.Context) error {
		out, err = storage.UpdateInfo(ctx, info, fieldpaths...)
		return err
	})
	return out, err
}

// Usage returns the disk space and inodes the snapshot key itself uses
// (not its parents): recorded at commit for a committed snapshot,
// measured now for an active one.
func (s *Snapshotter) Usage(ctx context.Context, key string) (snapshots.Usage, error) {
	var (
		id    string
		info  snapshots.Info
		usage snapshots.Usage
	)
	err := s.ms.WithTransaction(ctx, false, func(ctx context.Context) (err error) {
		id, info, usage, err = storage.GetInfo(ctx, key)
		return err
	})
	if err != nil {
		return snapshots.Usage{}, err
	}
	if info.Kind == snapshots.KindActive {
		du, err := fs.DiskUsage(ctx, s.upperPath(id))
		if err != nil {
			return snapshots.Usage{}, fmt.Errorf("usage of %s: %w", key, err)
		}
		usage = snapshots.Usage(du)
	}
	return usage, nil
}

// Walk calls fn for every snapshot that matches one of filters (all of
// them without filters), in containerd's filter syntax.
func (s *Snapshotter) Walk(ctx context.Context, fn snapshots.WalkFunc, filters ...string) error {
	return s.ms.WithTransaction(ctx, false, func(ctx context.Context) error {
		return storage.WalkInfo(ctx, fn, filters...)
	})
}

// Close closes the metadata store and hangs up on the union server.
// Mounts already made stay as they are: the processes serving them do
// not depend on the snapshotter, and a snapshotter started again on the
// same root finds them.
func (s *Snapshotter) Close() error {
	if s.unions != nil {
		s.unions.Close()
	}
	return s.ms.Close()
}

// snapshotsDir is the directory holding every snapshot's directory.
func (s *Snapshotter) snapshotsDir() string {
	return filepath.Join(s.root, "snapshots")
}

// upperPath is the fs directory of snapshot id: its upper while active,
// its layer once committed.
func (s *Snapshotter) upperPath(id string) string {
	return filepath.Join(s.root, "snapshots", id, "fs")
}

// mergedPath is where the union server mounts the union of snapshot id
// (the served form).
func (s *Snapshotter) mergedPath(id string) string {
	return filepath.Join(s.root, "snapshots", id, "merged")
}

// workPath is the unionfuse workdir of the active snapshot id.
func (s *Snapshotter) workPath(id string) string {
	return filepath.Join(s.root, "snapshots", id, "work")
}
