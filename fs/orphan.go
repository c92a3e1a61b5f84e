package fs

import (
	"strconv"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

// An orphan is a node whose name is gone from the merged view (unlinked,
// or replaced by a rename) while the kernel still uses it through an open
// descriptor. A lower file cannot be copied up any more then
// (handleForChange); a directory, fifo, socket or device keeps an O_PATH
// descriptor of its object on the node, through which it is still
// stat(2)ed and changed (holdOrphanDir, holdOrphanSpecial).

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

// A directory removed while open lives on through its descriptors: the
// kernel's overlay still reads and changes the attributes of an upper
// directory after rmdir (its inode is only unlinked). Directories are
// served without OPENDIR (dirserver.go), so the server does not know which
// are open: when it removes the upper copy of a directory the kernel has
// looked up, it keeps an O_PATH descriptor of it on the node, and once
// the directory is gone from the tree works on it through
// /proc/self/fd, until the kernel forgets the node.

// orphanHold is a descriptor of an object about to be removed or
// replaced, taken while it still has its name. keep puts it on its node
// once the removal is done; a removal that failed (a rename over a
// directory that is not empty) leaves no orphan, and the descriptor is
// closed, else the node of a live directory would hold it until the
// kernel forgets the node.
type orphanHold struct {
	n  *node
	fd int
}

// noOrphan holds nothing.
var noOrphan = orphanHold{fd: -1}

// keep puts the descriptor on its node when done, else closes it.
func (o orphanHold) keep(done bool) {
	switch {
	case o.fd < 0:
	case done:
		o.n.keepOrphanFd(o.fd)
	default:
		unix.Close(o.fd)
	}
}

// holdOrphanDir takes a descriptor of upper directory rel, about to be
// removed, for its node n (nil when the kernel has not looked it up).
func (ov *overlay) holdOrphanDir(n *node, rel string) orphanHold {
	if n == nil {
		return noOrphan
	}
	fd, err := unix.Openat(ov.upper.fd, at(rel), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return noOrphan
	}
	return orphanHold{n: n, fd: fd}
}

// keepOrphanFd puts fd on n, in place of any descriptor kept before.
func (n *node) keepOrphanFd(fd int) {
	if old := n.orphanFd.Swap(int32(fd)); old > 0 {
		unix.Close(int(old))
	}
}

// Fifos, sockets and devices are opened by the kernel itself, without an
// OPEN to this server: a stat of such a descriptor reaches the node without
// a handle, and once the name is removed or replaced the node has no
// object left to stat. holdOrphanSpecial keeps an O_PATH descriptor of the
// object on the node then (Getattr falls back to it), as for directories.

// isSpecialFile reports whether st is a fifo, a socket or a device.
func isSpecialFile(st *unix.Stat_t) bool {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFCHR, unix.S_IFBLK:
		return true
	}
	return false
}

// holdOrphanSpecial takes a descriptor of the object of n, a special file
// about to be removed or replaced (nil when the kernel has not looked it
// up). The caller holds ov.mu.
func (ov *overlay) holdOrphanSpecial(n *node) orphanHold {
	if n == nil {
		return noOrphan
	}
	l, p, errno := n.topPath()
	if errno != 0 {
		return noOrphan
	}
	fd, err := unix.Openat(l.fd, at(p), unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return noOrphan
	}
	return orphanHold{n: n, fd: fd}
}

// withOrphanDir calls fn with a /proc/self/fd path of the upper copy of n
// when n is a directory removed from the tree while the kernel still
// holds it; ok is false otherwise. The descriptor stays open while fn
// runs.
func (n *node) withOrphanDir(fn func(path string) error) (ok bool, err error) {
	if !n.IsDir() || !n.isOrphan() {
		return false, nil
	}
	fd := n.orphanFd.Load()
	if fd <= 0 {
		return false, nil
	}
	return true, fn("/proc/self/fd/" + strconv.Itoa(int(fd)))
}

// nodeForgotten is OnForget of n, which has left the tree.
func (ov *overlay) nodeForgotten(n *node) { n.OnForget() }

// OnForget closes the descriptor of a removed directory the kernel no
// longer holds.
func (n *node) OnForget() {
	if fd := n.orphanFd.Swap(0); fd > 0 {
		unix.Close(int(fd))
	}
}
