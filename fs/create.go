package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/unionfuse/unionfuse/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// makeFunc creates a new object at path, relative to dirfd.
type makeFunc func(dirfd int, path string) error

// createObject adds a new object named name to directory n in the upper
// layer, copying n up first. When a whiteout holds the name, the object is
// built in the work directory and swapped in atomically; a directory made
// there is marked opaque, so the entries the whiteout hid stay hidden.
// The caller holds ov.mu exclusively. It returns the new object's
// attributes.
func (n *node) createObject(ctx context.Context, name string, mode uint32, mk makeFunc) (unix.Stat_t, syscall.Errno) {
	var st unix.Stat_t
	ov := n.ov
	if ov.upper == nil {
		return st, syscall.EROFS
	}
	if errno := n.copyUp(); errno != 0 {
		return st, errno
	}
	dirRel := n.rel()
	rel := join(dirRel, name)
	var pst unix.Stat_t
	if err := ov.upper.lstat(dirRel, &pst); err != nil {
		return st, errnoOf(err)
	}
	isDir := mode&unix.S_IFMT == unix.S_IFDIR
	// Try in place first: the name is usually free in upper.
	err := mk(ov.upper.fd, rel)
	switch {
	case err == nil:
		if err := ov.finishNew(ctx, ov.upper.fd, rel, mode, &pst); err != nil {
			removeAllAt(ov.upper.fd, rel)
			return st, errnoOf(err)
		}
		if isDir && ov.redirect.creates() && len(n.layers()) > 1 {
			// As the kernel when lower layers cannot change offline
			// (redirect_dir=on): a new directory in a merged one is
			// opaque, which spares lookups below it. Allowed to fail.
			ov.setOpaque(ov.upper, rel)
		}
	case err != unix.EEXIST:
		return st, errnoOf(err)
	default:
		var ust unix.Stat_t
		if err := ov.upper.lstat(rel, &ust); err != nil {
			return st, errnoOf(err)
		}
		if !ov.isWhiteout(ov.upper, rel, &ust) {
			return st, syscall.EEXIST
		}
		tmp := ov.tempName()
		if err := mk(ov.work.fd, tmp); err != nil {
			return st, errnoOf(err)
		}
		err := ov.finishNew(ctx, ov.work.fd, tmp, mode, &pst)
		if err == nil && isDir {
			err = ov.setOpaque(ov.work, tmp)
		}
		if err == nil {
			err = ov.swapIn(tmp, rel, isDir)
		}
		if err != nil {
			removeAllAt(ov.work.fd, tmp)
			return st, errnoOf(err)
		}
	}
	if err := ov.upper.lstat(rel, &st); err != nil {
		return st, errnoOf(err)
	}
	return st, 0
}

// swapIn moves tmp from the work directory to rel in upper, replacing the
// whiteout there. A directory cannot be renamed over a non-directory, so
// it is exchanged with the whiteout, which is then deleted.
func (ov *overlay) swapIn(tmp, rel string, isDir bool) error {
	if !isDir {
		return unix.Renameat(ov.work.fd, tmp, ov.upper.fd, rel)
	}
	if err := unix.Renameat2(ov.work.fd, tmp, ov.upper.fd, rel, unix.RENAME_EXCHANGE); err != nil {
		return err
	}
	unix.Unlinkat(ov.work.fd, tmp, 0)
	return nil
}

// newIdentity is the owner and permission bits a new object gets: the
// caller's uid, and its gid unless the parent directory is set-group-ID
// (then the parent's group, and a directory inherits the set-group-ID
// bit). chown is false when the server cannot give files away.
type newIdentity struct {
	uid, gid int
	perm     uint32
	chown    bool
}

// inPlace says the object was made in its parent, not in the work
// directory: then it already has the server's uid and the group the
// kernel gave it, and chown is skipped when those are the right ones.
func (ov *overlay) identityFor(ctx context.Context, mode uint32, parent *unix.Stat_t, inPlace bool) newIdentity {
	id := newIdentity{perm: mode & 0o7777}
	sgidParent := parent.Mode&unix.S_ISGID != 0
	if sgidParent && mode&unix.S_IFMT == unix.S_IFDIR {
		id.perm |= unix.S_ISGID
	}
	if caller, ok := fuse.FromContext(ctx); ok && ov.privileged {
		uid, gid, err := ov.diskOwner(int(caller.Uid), int(caller.Gid))
		if err != nil {
			uid, gid = ov.euid, ov.egid // a caller without a mapping
		}
		id.uid, id.gid = uid, gid
		madeGid := ov.egid
		if sgidParent {
			id.gid = int(parent.Gid)
			if inPlace {
				madeGid = id.gid
			}
		}
		id.chown = !inPlace || id.uid != ov.euid || id.gid != madeGid
	}
	return id
}

// finishNew gives a just-created object at path (relative to dirfd) its
// identity (see identityFor) and the exact mode asked for.
func (ov *overlay) finishNew(ctx context.Context, dirfd int, path string, mode uint32, parent *unix.Stat_t) error {
	if mode == 0 {
		return nil // a new name for an existing object (link)
	}
	id := ov.identityFor(ctx, mode, parent, dirfd != ov.work.fd)
	if id.chown {
		if err := unix.Fchownat(dirfd, path, id.uid, id.gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	if mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	// The process umask may have masked bits the kernel already decided on;
	// chown above may have cleared set-id bits.
	if id.perm&(ov.umask|unix.S_ISUID|unix.S_ISGID) != 0 || dirfd == ov.work.fd {
		return unix.Fchmodat(dirfd, path, id.perm, 0)
	}
	return nil
}

// addChild makes the node of the object just created as name in n; fresh
// says the object itself is new, not only its name (a link).
func (n *node) addChild(name string, st *unix.Stat_t, fresh bool, out *fuse.EntryOut) *node {
	f := found{layers: []int{0}, st: *st, fresh: fresh}
	return n.newChild(name, &f, out)
}

// Create makes and opens a new regular file.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*node, gofs.FileHandle, uint32, syscall.Errno) {
	n.ov.mu.Lock()
	defer n.ov.mu.Unlock()
	f := int(flags) &^ (unix.O_APPEND | fuse.FMODE_EXEC)
	fd, accmode := -1, 0
	var fopen uint32
	st, errno := n.createObject(ctx, name, unix.S_IFREG|mode, func(dirfd int, path string) error {
		var err error
		fd, accmode, fopen, err = n.ov.openData(f, func(flags int) (int, error) {
			return unix.Openat(dirfd, path, flags|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, mode&0o7777)
		})
		return err
	})
	if errno != 0 {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, nil, 0, errno
	}
	ch := n.addChild(name, &st, true, out)
	h := &handle{n: ch, fd: fd, flags: withAccmode(f, accmode) &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC)}
	n.ov.trackHandle(h)
	return ch, n.ov.withPassthrough(h), fopen, 0
}

// Mkdir makes a directory; over a whiteout it is opaque.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*node, syscall.Errno) {
	n.ov.mu.Lock()
	defer n.ov.mu.Unlock()
	st, errno := n.createObject(ctx, name, unix.S_IFDIR|mode, func(dirfd int, path string) error {
		return unix.Mkdirat(dirfd, path, mode&0o7777)
	})
	if errno != 0 {
		return nil, errno
	}
	return n.addChild(name, &st, true, out), 0
}

// Mknod makes a device node, fifo or socket. A character device 0/0 would
// read as a whiteout, so, like the kernel, it is refused.
func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*node, syscall.Errno) {
	if ovlfmt.IsWhiteoutDev(mode, uint64(dev)) {
		return nil, syscall.EPERM
	}
	n.ov.mu.Lock()
	defer n.ov.mu.Unlock()
	st, errno := n.createObject(ctx, name, mode, func(dirfd int, path string) error {
		return unix.Mknodat(dirfd, path, mode, int(dev))
	})
	if errno != 0 {
		return nil, errno
	}
	return n.addChild(name, &st, true, out), 0
}

// Symlink makes a symbolic link.
func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*node, syscall.Errno) {
	n.ov.mu.Lock()
	defer n.ov.mu.Unlock()
	st, errno := n.createObject(ctx, name, unix.S_IFLNK|0o777, func(dirfd int, path string) error {
		return unix.Symlinkat(target, dirfd, path)
	})
	if errno != 0 {
		return nil, errno
	}
	return n.addChild(name, &st, true, out), 0
}

// Link makes a hard link; the target is copied up first, as links can only
// be made within the upper layer.
func (n *node) Link(ctx context.Context, tn *node, name string, out *fuse.EntryOut) (*node, syscall.Errno) {
	n.ov.mu.Lock()
	defer n.ov.mu.Unlock()
	if n.ov.upper == nil {
		return nil, syscall.EROFS
	}
	srcFd, srcPath, flags := n.ov.upper.fd, "", 0
	if tmpFd, ok := n.ov.tmpfileFd(tn.ino()); ok {
		// An O_TMPFILE file has no name yet: link it through its descriptor.
		srcFd, srcPath, flags = unix.AT_FDCWD, procFdPath(tmpFd), unix.AT_SYMLINK_FOLLOW
	} else {
		if errno := tn.copyUpRenamed(); errno != 0 {
			return nil, errno
		}
		if n.ov.hadLowerBacking(tn.key()) {
			// A second name must not lead to an inode backed by a lower
			// file (see passthrough.go); link(2) retries on ESTALE.
			return nil, n.ov.renew(tn)
		}
		srcPath = tn.rel()
	}
	var meta *entry
	if tn.isMetacopy() {
		// Both names must lead to the data: a path from the root (the
		// kernel's ovl_set_link_redirect).
		if errno := n.ov.setRedirect(tn, false); errno != 0 {
			return nil, errno
		}
		meta = tn.metaState()
		tn.state.Store(meta)
	}
	// A link to an indexed object counts up its links (index.go).
	idx, indexed := "", false
	var before int64
	var tst unix.Stat_t
	if n.ov.index != nil && srcFd == n.ov.upper.fd && n.ov.upper.lstat(srcPath, &tst) == nil {
		if idx, indexed = n.ov.indexNameOf(srcPath, &tst); indexed {
			before, _ = n.ov.indexNlink(idx)
		}
	}
	st, errno := n.createObject(ctx, name, 0, func(dirfd int, path string) error {
		return unix.Linkat(srcFd, srcPath, dirfd, path, flags)
	})
	if errno != 0 {
		return nil, errno
	}
	if indexed {
		n.ov.setIndexNlink(idx, before+1)
	}
	n.ov.linkedTmpfile(tn.ino())
	n.ov.markImpureIfOrigin(n.rel(), join(n.rel(), name)) // as the kernel's link
	tn.notifyAliases()                                    // its link count rose (alias.go)
	ch := n.addChild(name, &st, false, out)
	if meta != nil {
		ch.state.Store(meta) // the same node, or another name's
	}
	return ch, 0
}
