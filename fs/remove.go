package fs

import (
	"context"
	"syscall"

	"github.com/unionfuse/unionfuse/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// sharedWhiteout is the name, in the work directory, of the one whiteout
// inode that every whiteout is a hard link to (as the kernel does): a
// whiteout then costs a link, not a new inode.
const sharedWhiteout = "#whiteout"

// makeWhiteout creates a whiteout at path, relative to dirfd, that will
// end up at dest in upper. Where character devices cannot be made, it makes
// an xattr whiteout and marks dest's directory for readdir.
func (ov *overlay) makeWhiteout(dirfd int, path, dest string) error {
	err := ov.makeDeviceWhiteout(dirfd, path)
	if err != unix.EPERM {
		return err
	}
	if err := ov.markXwhiteouts(dir(dest)); err != nil {
		return err
	}
	return ov.xattr.MakeXattrWhiteout(dirfd, path)
}

// makeDeviceWhiteout creates a character device 0/0 at path, relative to
// dirfd, as a hard link to the shared whiteout where it can.
func (ov *overlay) makeDeviceWhiteout(dirfd int, path string) error {
	err := unix.Linkat(ov.work.fd, sharedWhiteout, dirfd, path, 0)
	if err == nil {
		return nil
	}
	if err == unix.ENOENT || err == unix.EMLINK {
		// (Re)create the shared inode: a fresh one when the old is full.
		tmp := ov.tempName()
		if ovlfmt.MakeWhiteout(ov.work.fd, tmp) == nil {
			if unix.Renameat(ov.work.fd, tmp, ov.work.fd, sharedWhiteout) == nil {
				if unix.Linkat(ov.work.fd, sharedWhiteout, dirfd, path, 0) == nil {
					return nil
				}
			} else {
				unix.Unlinkat(ov.work.fd, tmp, 0)
			}
		}
	}
	return ovlfmt.MakeWhiteout(dirfd, path)
}

// replaceWithWhiteout puts a whiteout where the upper object rel is, in one
// step: a directory is exchanged with the whiteout and then deleted from
// the work directory.
func (ov *overlay) replaceWithWhiteout(rel string, isDir bool) error {
	tmp := ov.tempName()
	if err := ov.makeWhiteout(ov.work.fd, tmp, rel); err != nil {
		return err
	}
	if !isDir {
		if err := unix.Renameat(ov.work.fd, tmp, ov.upper.fd, rel); err != nil {
			unix.Unlinkat(ov.work.fd, tmp, 0)
			return err
		}
		return nil
	}
	if err := unix.Renameat2(ov.work.fd, tmp, ov.upper.fd, rel, unix.RENAME_EXCHANGE); err != nil {
		unix.Unlinkat(ov.work.fd, tmp, 0)
		return err
	}
	return removeAllAt(ov.work.fd, tmp)
}

// removeUpperDir deletes an upper directory that shows no entries (it may
// still hold whiteouts): it is moved to the work directory first, so it
// disappears from upper at once.
func (ov *overlay) removeUpperDir(rel string) error {
	tmp := ov.tempName()
	if err := unix.Renameat(ov.upper.fd, rel, ov.work.fd, tmp); err != nil {
		return err
	}
	return removeAllAt(ov.work.fd, tmp)
}

// removeName takes name, resolved as f, out of directory n: from upper
// when only upper has it, otherwise by leaving a whiteout. The caller holds
// ov.mu exclusively.
func (n *node) removeName(name string, f *found) syscall.Errno {
	ov := n.ov
	dirRel := n.rel()
	rel := join(dirRel, name)
	// An object found under its own name in a lower layer needs a
	// whiteout: no second lookup below the upper layer (one stat per
	// unlink of rm -rf). A renamed directory's lower part (redirect.go)
	// lives under another name, which says nothing about this one.
	needWhiteout := !f.redirected && f.layers[len(f.layers)-1] != 0
	if !needWhiteout {
		var errno syscall.Errno
		if needWhiteout, errno = ov.lowerHasName(n.view(), name); errno != 0 {
			return errno
		}
	}
	isDir := isDirStat(&f.st)
	inUpper := f.layers[0] == 0 && ov.upper != nil
	// A name of an indexed object counts down its links (index.go).
	idx, indexed := "", false
	if !isDir && ov.index != nil {
		if !inUpper && ov.indexing(&f.st) {
			// As the kernel: the name is copied up (into the index)
			// first, so the count has a place to live; then whited out.
			cn, errno := n.childNode(name)
			if errno != 0 {
				return errno
			}
			if errno := cn.copyUp(); errno != 0 {
				return errno
			}
			if err := ov.upper.lstat(rel, &f.st); err != nil {
				return errnoOf(err)
			}
			f.layers, inUpper = []int{0}, true
		}
		idx, indexed = ov.indexNameOf(rel, &f.st)
	}
	var before int64
	if indexed {
		before, _ = ov.indexNlink(idx)
	}
	// It may still be open (orphan.go).
	hold, removed := noOrphan, false
	defer func() { hold.keep(removed) }()
	if isDir && inUpper {
		cn, _ := n.childNode(name)
		hold = ov.holdOrphanDir(cn, rel)
	}
	if isSpecialFile(&f.st) {
		cn, _ := n.childNode(name)
		hold = ov.holdOrphanSpecial(cn)
	}
	var err error
	switch {
	case !needWhiteout && isDir:
		err = ov.removeUpperDir(rel)
	case !needWhiteout:
		err = unix.Unlinkat(ov.upper.fd, rel, 0)
	default:
		if errno := n.copyUp(); errno != 0 {
			return errno
		}
		if inUpper {
			err = ov.replaceWithWhiteout(rel, isDir)
		} else {
			err = ov.makeWhiteout(ov.upper.fd, rel, rel)
		}
	}
	if err != nil {
		return errnoOf(err)
	}
	removed = true
	if indexed {
		ov.setIndexNlink(idx, before-1)
	}
	n.notifyChildAliases(name) // its link count fell (alias.go)
	if !inUpper || isDir || f.st.Nlink <= 1 {
		var upperSt *unix.Stat_t
		if inUpper {
			upperSt = &f.st
		}
		cn, _ := n.childNode(name)
		ov.forget(cn, upperSt)
	}
	return 0
}

// Unlink removes a non-directory.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.remove(name, false)
}

// Rmdir removes a directory that shows no entries in the merged view.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.remove(name, true)
}

// remove is unlink (dir false) or rmdir (dir true) of name in n.
func (n *node) remove(name string, dir bool) syscall.Errno {
	if n.ov.upper == nil {
		return syscall.EROFS
	}
	n.ov.mu.Lock()
	defer n.ov.mu.Unlock()
	v := n.view()
	f, errno := n.ov.resolve(v, name)
	if errno != 0 {
		return errno
	}
	switch isDir := isDirStat(&f.st); {
	case isDir && !dir:
		return syscall.EISDIR
	case !isDir && dir:
		return syscall.ENOTDIR
	case dir:
		empty, errno := n.ov.isEmptyDir(v.child(name, &f))
		if errno != 0 {
			return errno
		}
		if !empty {
			return syscall.ENOTEMPTY
		}
	}
	return n.removeName(name, &f)
}
