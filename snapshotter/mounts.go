package snapshotter

import (
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/storage"
)

// MountType is the type of the union mounts the snapshotter returns by
// default: containerd runs mount.fuse3 for a "fuse3." type, which runs
// the program after the dot (found through PATH) as
// `unionfuse-fuse SOURCE TARGET -o OPTIONS`.
const MountType = "fuse3." + DefaultMountHelper

// DefaultMountHelper is the program mount.fuse3 runs for the unions
// unless WithMountHelper says otherwise: the small serving binary that is
// installed beside unionfuse, whose start is shorter than the whole CLI's
// (every container start waits for it). When it is not on PATH, New falls
// back to FallbackMountHelper.
const DefaultMountHelper = "unionfuse-fuse"

// FallbackMountHelper is the mount helper when DefaultMountHelper is not
// on PATH: the CLI, which serves unions too.
const FallbackMountHelper = "unionfuse"

// mounts returns the mounts that show snap (see the package doc).
func (s *Snapshotter) mounts(snap storage.Snapshot) []mount.Mount {
	if len(snap.ParentIDs) == 0 {
		mode := "rw"
		if snap.Kind == snapshots.KindView {
			mode = "ro"
		}
		return []mount.Mount{bind(s.upperPath(snap.ID), mode)}
	}
	var options []string
	if snap.Kind == snapshots.KindActive {
		options = append(options,
			"upperdir="+s.upperPath(snap.ID),
			"workdir="+s.workPath(snap.ID))
	} else if len(snap.ParentIDs) == 1 {
		return []mount.Mount{bind(s.upperPath(snap.ParentIDs[0]), "ro")}
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
	return []mount.Mount{{Type: "fuse3." + s.helper, Source: "unionfuse", Options: options}}
}

// bind is a recursive bind mount of dir, mode "ro" or "rw".
func bind(dir, mode string) mount.Mount {
	return mount.Mount{Type: "bind", Source: dir, Options: []string{mode, "rbind"}}
}
