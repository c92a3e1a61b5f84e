package snapshotter

import (
	"fmt"
	"os"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/storage"
	"github.com/unionfuse/unionfuse/internal/mountopts"
	"github.com/unionfuse/unionfuse/internal/unionserver"
)

// MountType is the type of the union mounts the snapshotter returns with
// WithMountHelper(DefaultMountHelper): containerd runs mount.fuse3 for a
// "fuse3." type, which runs the program after the dot (found through
// PATH) as `unionfuse-fuse SOURCE TARGET -o OPTIONS`.
const MountType = "fuse3." + DefaultMountHelper

// DefaultMountHelper is the small serving binary: the program mount.fuse3
// runs for the unions in the helper form (WithMountHelper), and the one
// the union server is started from.
const DefaultMountHelper = unionserver.BinaryName

// FallbackMountHelper is the mount helper when DefaultMountHelper is
// asked for and is not on PATH: the CLI, which serves unions too.
const FallbackMountHelper = "unionfuse"

// mounts returns the mounts that show snap (see the package doc),
// serving its union first when the snapshotter serves them.
func (s *Snapshotter) mounts(snap storage.Snapshot) ([]mount.Mount, error) {
	mode := "rw"
	if snap.Kind == snapshots.KindView {
		mode = "ro"
	}
	switch {
	case len(snap.ParentIDs) == 0:
		return []mount.Mount{bind(s.upperPath(snap.ID), mode)}, nil
	case snap.Kind == snapshots.KindView && len(snap.ParentIDs) == 1:
		return []mount.Mount{bind(s.upperPath(snap.ParentIDs[0]), "ro")}, nil
	}
	options := s.unionOptions(snap)
	if s.unions == nil {
		return []mount.Mount{{Type: "fuse3." + s.helper, Source: "unionfuse", Options: options}}, nil
	}
	merged := s.mergedPath(snap.ID)
	if err := s.serve(merged, options); err != nil {
		return nil, fmt.Errorf("union of %s: %w", snap.ID, err)
	}
	return []mount.Mount{bind(merged, mode)}, nil
}

// unionOptions returns the kernel-style options of the union of snap, a
// snapshot with parents: an upper and a workdir when it is active,
// its parents as lower layers.
func (s *Snapshotter) unionOptions(snap storage.Snapshot) []string {
	var options []string
	if snap.Kind == snapshots.KindActive {
		options = append(options,
			"upperdir="+s.upperPath(snap.ID),
			"workdir="+s.workPath(snap.ID))
	}
	lowers := make([]string, len(snap.ParentIDs))
	for i, id := range snap.ParentIDs {
		lowers[i] = s.upperPath(id)
	}
	// ParentIDs are nearest first, as lowerdir= lists its layers.
	options = append(options, "lowerdir="+strings.Join(lowers, ":"))
	if s.userxattr {
		options = append(options, "userxattr")
	}
	return options
}

// serve has the union server mount the union that options describe (the
// same options the helper form passes) at merged, unless it serves it
// there already.
func (s *Snapshotter) serve(merged string, options []string) error {
	opts, err := mountopts.Parse(options...)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(merged, 0o755); err != nil {
		return err
	}
	cfg := opts.FsConfig()
	cfg.FsName = "unionfuse"
	return s.unions.Mount(merged, cfg)
}

// bind is a recursive bind mount of dir, mode "ro" or "rw".
func bind(dir, mode string) mount.Mount {
	return mount.Mount{Type: "bind", Source: dir, Options: []string{mode, "rbind"}}
}
