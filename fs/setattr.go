package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

var _ = (gofs.NodeSetattrer)((*node)(nil))

// Setattr changes mode, owner, size or times. Through an open upper
// descriptor when there is one (the file may be unlinked, and no path is
// walked); otherwise the node is copied up first and changed by path.
func (n *node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.ov.upper == nil {
		return syscall.EROFS
	}
	in, err := n.ov.diskSetattr(in)
	if err != nil {
		return errnoOf(err)
	}
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
		return n.ov.renew(n.ino())
	}
	if h := n.ov.upperHandle(n.key(), f); h != nil {
		var st unix.Stat_t
		done, err := h.withFd(func(fd int) error {
			p := procFdPath(fd)
			if err := applySetattr(unix.AT_FDCWD, p, p, 0, in); err != nil {
				return err
			}
			return unix.Fstat(fd, &st)
		})
		if done {
			if err != nil {
				return errnoOf(err)
			}
			n.fillAttr(&st, &out.Attr)
			return 0
		}
	}
	if n.isUpper() {
		// Nothing to copy: changing the object's own attributes does not
		// change the namespace, and an upper copy stays upper.
		n.ov.mu.RLock()
		defer n.ov.mu.RUnlock()
	} else {
		n.ov.mu.Lock()
		defer n.ov.mu.Unlock()
		if f == nil {
			if errno := n.copyUpRenamed(); errno != 0 {
				return errno
			}
		} else {
			if errno := n.copyUp(); errno != 0 {
				return errno
			}
			defer n.dropStaleEntry()
		}
	}
	up := n.ov.upper
	rel := n.rel()
	if err := applySetattr(up.fd, at(rel), up.procPath(rel), unix.AT_SYMLINK_NOFOLLOW, in); err != nil {
		return errnoOf(err)
	}
	var st unix.Stat_t
	if err := up.lstat(rel, &st); err != nil {
		return errnoOf(err)
	}
	n.fillAttr(&st, &out.Attr)
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

// applySetattr applies what in asks for to path (relative to dirfd; flags
// may hold AT_SYMLINK_NOFOLLOW). truncPath names the same object for
// truncate(2), which has no *at form.
func applySetattr(dirfd int, path, truncPath string, flags int, in *fuse.SetAttrIn) error {
	if in.Valid&fuse.FATTR_KILL_SUIDGID != 0 {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, path, &st, flags); err != nil {
			return err
		}
		if err := killPrivs(dirfd, path, &st, in.Caller.Gid); err != nil {
			return err
		}
	}
	if m, ok := in.GetMode(); ok {
		if err := unix.Fchmodat(dirfd, path, m&0o7777, 0); err != nil {
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
		if err := unix.Fchownat(dirfd, path, suid, sgid, flags); err != nil {
			return err
		}
	}
	if sz, ok := in.GetSize(); ok {
		if err := unix.Truncate(truncPath, int64(sz)); err != nil {
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
		if err := unix.UtimesNanoAt(dirfd, path, ts, flags); err != nil {
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
