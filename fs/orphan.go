package fs

import (
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// isOrphan reports whether n is no longer in the tree (unlinked or
// replaced) and is not the root.
func (n *node) isOrphan() bool {
	_, parent := n.Parent()
	return parent == nil && !n.IsRoot()
}

// handleForChange returns the open upper handle to change n through: f
// when it is one, or another open upper handle of n; nil when n is to be
// changed by path (after a copy-up).
//
// A lower file that has been unlinked (or replaced) while open cannot be
// copied up any more: its name in upper is taken by the whiteout or the
// new object. The kernel's overlay then fails such changes with EEXIST,
// and so does unionfuse.
func (n *node) handleForChange(f gofs.FileHandle) (*handle, syscall.Errno) {
	if h := n.ov.upperHandle(n.key(), f); h != nil {
		return h, 0
	}
	if n.ov.upper != nil && !n.isUpper() && n.isOrphan() {
		return nil, syscall.EEXIST
	}
	return nil, 0
}
