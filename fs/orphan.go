package fs

import (
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"golang.org/x/sys/unix"
)

// A lower file that is unlinked while open can still be changed through
// its descriptors (fchmod, fsetxattr, ...). Like the kernel, unionfuse then
// copies it up without a name: to an O_TMPFILE file in the work directory,
// which the open handles switch to. It disappears with the last of them.

// isOrphan reports whether n is no longer in the tree (unlinked or
// replaced) and is not the root.
func (n *node) isOrphan() bool {
	_, parent := n.Parent()
	return parent == nil && !n.IsRoot()
}

// handleForChange returns the open upper handle to change n through: f
// when it is one, another open upper handle of n, or the handle of n's
// nameless copy when n is an unlinked lower file; nil when n is to be
// changed by path.
func (n *node) handleForChange(f gofs.FileHandle) (*handle, syscall.Errno) {
	if h := n.ov.upperHandle(n.key(), f); h != nil {
		return h, 0
	}
	return n.orphanHandle()
}

// orphanHandle copies an open, unlinked lower file up without a name and
// returns an upper handle of it; nil when n is not such a file.
func (n *node) orphanHandle() (*handle, syscall.Errno) {
	ov := n.ov
	if ov.upper == nil || !n.isOrphan() {
		return nil, 0
	}
	ov.mu.Lock()
	defer ov.mu.Unlock()
	if h := ov.upperHandle(n.key(), nil); h != nil {
		return h, 0 // another request did it meanwhile
	}
	src := ov.openHandleOf(n.key())
	if src == nil {
		return nil, 0
	}
	var tmp int
	done, err := src.withFd(func(fd int) error {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		var err error
		tmp, err = unix.Openat(ov.work.fd, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		if err := copyData(fd, tmp, st.Size); err == nil {
			err = unix.Ftruncate(tmp, st.Size)
		}
		if err != nil {
			unix.Close(tmp)
			return err
		}
		p := procFdPath(tmp)
		return ov.copyMetadata(unix.AT_FDCWD, p, &st, func() error { return ov.copyXattrsFd(fd, tmp) })
	})
	if !done || err != nil {
		return nil, errnoOf(err)
	}
	defer unix.Close(tmp)
	ov.setEntry(n.key(), []int{0})
	ov.switchHandlesTo(n.key(), procFdPath(tmp))
	return ov.upperHandle(n.key(), nil), 0
}

// copyXattrsFd copies the user-visible extended attributes from one open
// file to another.
func (ov *overlay) copyXattrsFd(from, to int) error {
	names, err := listxattrFd(from)
	if err != nil {
		if err == unix.ENOTSUP {
			return nil
		}
		return err
	}
	for _, name := range names {
		if ov.isPrivateXattr(name) {
			continue
		}
		sz, err := unix.Fgetxattr(from, name, nil)
		if err != nil {
			continue
		}
		val := make([]byte, sz)
		if sz, err = unix.Fgetxattr(from, name, val); err != nil {
			continue
		}
		if err := unix.Fsetxattr(to, name, val[:sz], 0); err != nil && ov.privileged {
			return err
		}
	}
	return nil
}
