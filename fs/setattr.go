package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Setattr changes mode, owner, size or times. Through an open upper
// descriptor when there is one (the file may be unlinked, and no path is
// walked); otherwise the node is copied up first and changed by path.
func (n *node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) (errno syscall.Errno) {
	if n.ov.upper == nil {
		return syscall.EROFS
	}
	if in.Valid&fuse.FATTR_MTIME != 0 && n.ov.writeback {
		defer func() {
			if errno == 0 {
				n.ov.kernelSentMtime(n.key(), unix.Timespec{Sec: int64(out.Mtime), Nsec: int64(out.Mtimensec)})
			}
		}()
	}
	if setsNothing(in) && n.killByOtherDenied(in) {
		return syscall.EPERM
	}
	in, err := n.ov.diskSetattr(in)
	if err != nil {
		return errnoOf(err)
	}
	in = n.keepMtimeOnTruncate(in)
	if killRequested(in) {
		in = withKill(in)
	}
	if sz, ok := in.GetSize(); ok && n.ov.hadLowerBacking(n.key()) {
		// The kernel would keep reading the lower backing file: renew the
		// node first (see passthrough.go). truncate(2) and open(O_TRUNC)
		// retry on ESTALE; ftruncate needs a writable descriptor, which a
		// lower-backed node never has.
		n.ov.mu.Lock()
		defer n.ov.mu.Unlock()
		if errno := n.copyUpWith(sz != 0); errno != 0 {
			return errno
		}
		return n.ov.renew(n)
	}
	// A directory removed while open: changed through its descriptor, as
	// the kernel changes the unlinked upper inode (orphan.go).
	var ost unix.Stat_t
	if ok, err := n.withOrphanDir(func(p string) error {
		if err := applySetattr(setattrTarget{fd: -1, dirfd: unix.AT_FDCWD, path: p, truncPath: p}, in); err != nil {
			return err
		}
		return unix.Stat(p, &ost)
	}); ok {
		if err != nil {
			return errnoOf(err)
		}
		n.fillAttrOut(&ost, out)
		return 0
	}
	h, errno := n.handleForChange(f)
	if errno != 0 {
		return errno
	}
	if h != nil {
		var st unix.Stat_t
		done, err := h.withFd(func(fd int) error {
			if err := applySetattr(fdTarget(fd), in); err != nil {
				return err
			}
			return unix.Fstat(fd, &st)
		})
		if done {
			if err != nil {
				return errnoOf(err)
			}
			n.notifyAliases()
			n.fillAttrOut(&st, out)
			return 0
		}
	}
	_, truncating := in.GetSize()
	if n.isUpper() && !(truncating && n.isMetacopy()) {
		// Nothing to copy: changing the object's own attributes does not
		// change the namespace, and an upper copy stays upper.
		n.ov.mu.RLock()
		defer n.ov.mu.RUnlock()
	} else {
		// A truncation needs the data, even of a metacopy file.
		n.ov.mu.Lock()
		defer n.ov.mu.Unlock()
		if errno := n.copyUpForChange(truncating); errno != 0 {
			return errno
		}
	}
	up := n.ov.upper
	rel := n.rel()
	target := setattrTarget{fd: -1, dirfd: up.fd, path: at(rel), truncPath: up.procPath(rel), flags: unix.AT_SYMLINK_NOFOLLOW}
	if err := applySetattr(target, in); err != nil {
		return errnoOf(err)
	}
	n.notifyAliases()
	var st unix.Stat_t
	if err := up.lstat(rel, &st); err != nil {
		return errnoOf(err)
	}
	n.fillAttrOut(&st, out)
	return 0
}

// diskSetattr returns in with the owner it sets mapped to the ids stored
// on disk (see Config.UIDMap).
func (ov *overlay) diskSetattr(in *fuse.SetAttrIn) (*fuse.SetAttrIn, error) {
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if !uok && !gok || len(ov.cfg.UIDMap) == 0 && len(ov.cfg.GIDMap) == 0 {
		return in, nil
	}
	mapped := *in
	u, g := -1, -1
	if uok {
		u = int(uid)
	}
	if gok {
		g = int(gid)
	}
	u, g, err := ov.diskOwner(u, g)
	if err != nil {
		return nil, err
	}
	mapped.Uid, mapped.Gid = uint32(u), uint32(g)
	return &mapped, nil
}

// setattrTarget is the object a SETATTR changes: an open descriptor (fd
// >= 0), or path relative to dirfd in a layer (flags may hold
// AT_SYMLINK_NOFOLLOW; truncPath names it for truncate(2), which has no
// *at form).
type setattrTarget struct {
	fd        int
	dirfd     int
	path      string
	truncPath string
	flags     int
}

func fdTarget(fd int) setattrTarget {
	p := procFdPath(fd)
	return setattrTarget{fd: fd, dirfd: unix.AT_FDCWD, path: p, truncPath: p}
}

func (t setattrTarget) stat(st *unix.Stat_t) error {
	if t.fd >= 0 {
		return unix.Fstat(t.fd, st)
	}
	return unix.Fstatat(t.dirfd, t.path, st, t.flags)
}

func (t setattrTarget) chmod(mode uint32) error {
	if t.fd >= 0 {
		return unix.Fchmod(t.fd, mode)
	}
	return unix.Fchmodat(t.dirfd, t.path, mode, 0)
}

func (t setattrTarget) chown(uid, gid int) error {
	if t.fd >= 0 {
		return unix.Fchown(t.fd, uid, gid)
	}
	return unix.Fchownat(t.dirfd, t.path, uid, gid, t.flags)
}

func (t setattrTarget) utimes(ts []unix.Timespec) error {
	if t.fd >= 0 {
		return futimens(t.fd, ts)
	}
	return unix.UtimesNanoAt(t.dirfd, t.path, ts, t.flags)
}

func (t setattrTarget) truncate(size int64) error {
	if t.fd >= 0 {
		err := unix.Ftruncate(t.fd, size)
		if err != unix.EINVAL && err != unix.EBADF {
			return err
		}
		// A descriptor open read-only: truncate by name, as root.
	}
	return unix.Truncate(t.truncPath, size)
}

// applySetattr applies what in asks for to t.
func applySetattr(t setattrTarget, in *fuse.SetAttrIn) error {
	if in.Valid&fuse.FATTR_KILL_SUIDGID != 0 {
		var st unix.Stat_t
		if err := t.stat(&st); err != nil {
			return err
		}
		if err := killPrivs(t.dirfd, t.path, &st, in.Caller.Uid, in.Caller.Gid); err != nil {
			return err
		}
	}
	if m, ok := in.GetMode(); ok {
		if err := t.chmod(m & 0o7777); err != nil {
			return err
		}
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		suid, sgid := -1, -1
		if uok {
			suid = int(uid)
		}
		if gok {
			sgid = int(gid)
		}
		if err := t.chown(suid, sgid); err != nil {
			return err
		}
	}
	if sz, ok := in.GetSize(); ok {
		if err := t.truncate(int64(sz)); err != nil {
			return err
		}
	}
	if in.Valid&(fuse.FATTR_ATIME|fuse.FATTR_MTIME) != 0 {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if in.Valid&fuse.FATTR_ATIME != 0 {
			ts[0] = timespec(in.Valid&fuse.FATTR_ATIME_NOW != 0, in.Atime, in.Atimensec)
		}
		if in.Valid&fuse.FATTR_MTIME != 0 {
			ts[1] = timespec(in.Valid&fuse.FATTR_MTIME_NOW != 0, in.Mtime, in.Mtimensec)
		}
		if err := t.utimes(ts); err != nil {
			return err
		}
	}
	return nil
}

func timespec(now bool, sec uint64, nsec uint32) unix.Timespec {
	if now {
		return unix.Timespec{Nsec: unix.UTIME_NOW}
	}
	return unix.Timespec{Sec: int64(sec), Nsec: int64(nsec)}
}
