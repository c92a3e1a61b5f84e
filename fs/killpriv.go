package fs

import (
	"context"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// With FUSE_HANDLE_KILLPRIV_V2 negotiated, the kernel leaves it to this
// server to drop privileges when an unprivileged user changes a file: the
// set-user-ID bit, the set-group-ID bit (when group-executable) and file
// capabilities go away on write, truncate and chown, as the kernel's own
// filesystems do. The kernel then no longer asks for security.capability
// before every write (one FUSE round trip per write otherwise).
//
// The kernel says so with FATTR_KILL_SUIDGID on SETATTR for truncate. Before
// an unprivileged write to a file with set-id bits (through the server or
// through passthrough alike) it calls notify_change with only the "kill"
// attributes, which reach the server as a SETATTR that sets nothing: that
// is the request to drop privileges. The WRITE flag FUSE_WRITE_KILL_SUIDGID
// and the OPEN flag for O_TRUNC are not looked at; the SETATTR
// covers writes, and Open applies the rule for O_TRUNC itself.

// killPrivs drops set-id bits and capabilities of the object at path
// (relative to dirfd; a /proc/self/fd path with AT_FDCWD) when st shows any.
// As in Linux 6.x (setattr_should_drop_sgid), set-group-ID goes when the
// file is group-executable, or when the caller is neither root (who has
// CAP_FSETID) nor in the file's group (its group callerGid: supplementary
// groups are not known to a FUSE server).
//
// Any object but a directory: chown(2) drops the bits of a fifo or a
// device node too. Not a symlink, which has none, and whose /proc path
// below would lead to its target.
func killPrivs(dirfd int, path string, st *unix.Stat_t, callerUid, callerGid uint32) error {
	if t := st.Mode & unix.S_IFMT; t == unix.S_IFDIR || t == unix.S_IFLNK {
		return nil
	}
	kill := killBits(st, callerUid, callerGid)
	if st.Mode&kill != 0 {
		if err := unix.Fchmodat(dirfd, path, st.Mode&0o7777&^kill, 0); err != nil {
			return err
		}
	}
	if err := removeCapability(dirfd, path); err != nil && err != unix.ENODATA && err != unix.ENOTSUP {
		return err
	}
	return nil
}

// removeCapability removes security.capability from path (relative to
// dirfd, or a /proc/self/fd path with AT_FDCWD), through removexattrat
// where the kernel has it (xattrat.go).
func removeCapability(dirfd int, path string) error {
	if dirfd != unix.AT_FDCWD && xattrAtUsable() {
		if err := removexattrAt(dirfd, path, capabilityXattr); !noXattrAt(err) {
			return err
		}
	}
	p := path
	if dirfd != unix.AT_FDCWD {
		p = procDirPath(dirfd, path)
	}
	return unix.Removexattr(p, capabilityXattr)
}

// killBits returns the set-id bits a change by callerUid/callerGid drops
// from st's mode (Linux's setattr_should_drop_sgid for set-group-ID).
func killBits(st *unix.Stat_t, callerUid, callerGid uint32) uint32 {
	kill := uint32(unix.S_ISUID)
	if st.Mode&unix.S_IXGRP != 0 || callerUid != 0 && st.Gid != callerGid {
		kill |= unix.S_ISGID
	}
	return kill
}

// procDirPath names path relative to dirfd through /proc/self/fd.
func procDirPath(dirfd int, path string) string {
	if path == "." || path == "" {
		return procFdPath(dirfd)
	}
	return procFdPath(dirfd) + "/" + path
}

// killRequested reports whether a SETATTR asks to drop privileges:
// FATTR_KILL_SUIDGID, or a SETATTR that changes nothing (see above).
func killRequested(in *fuse.SetAttrIn) bool {
	if in.Valid&fuse.FATTR_KILL_SUIDGID != 0 {
		return true
	}
	// A SETATTR that sets nothing: the kernel's notify_change with only
	// the kill attributes, before an unprivileged write, or for chown(2)
	// to the same owner, which drops set-id bits even for root (a chown
	// that changes ids goes through fchownat, which drops them by itself).
	return setsNothing(in)
}

// setsNothing reports whether a SETATTR changes no attribute. FATTR_CTIME
// does not count: no call can set a ctime, and the kernel adds it with the
// writeback cache (writeback.go).
func setsNothing(in *fuse.SetAttrIn) bool {
	return in.Valid&^(fuse.FATTR_FH|fuse.FATTR_LOCKOWNER|fuse.FATTR_CTIME) == 0
}

// withKill returns in with FATTR_KILL_SUIDGID set.
func withKill(in *fuse.SetAttrIn) *fuse.SetAttrIn {
	if in.Valid&fuse.FATTR_KILL_SUIDGID != 0 {
		return in
	}
	k := *in
	k.Valid |= fuse.FATTR_KILL_SUIDGID
	return &k
}

// unprivilegedCaller reports whether the request comes from a user who
// does not keep privileges across changes (not root), and its ids.
func unprivilegedCaller(ctx context.Context) (uid, gid uint32, ok bool) {
	c, found := fuse.FromContext(ctx)
	if !found || c.Uid == 0 {
		return 0, 0, false
	}
	return c.Uid, c.Gid, true
}

// killByOtherDenied reports whether an empty SETATTR from the caller —
// chown(path, -1, -1), which drops set-id bits — must fail with EPERM:
// the kernel lets only the owner (or root) change a file's mode, so a
// chown that would clear set-id bits of another user's file fails, and
// changes nothing. A write by another user drops them all the same (the
// kernel forces that change) and may arrive as the same empty SETATTR;
// such a write comes through a descriptor open for writing, so an open
// writable handle on the node lets the request through (a read-only one,
// a running binary, does not). With the writeback cache the two differ:
// the kernel sends a chown's ctime (FATTR_CTIME), never a write's drop,
// so a SETATTR with a ctime is judged as a chown whoever has the file
// open. Without it (passthrough) a chown while someone else writes the
// file gets through: known, and less harmful than failing a write.
func (n *node) killByOtherDenied(in *fuse.SetAttrIn) bool {
	uid, gid := in.Caller.Uid, in.Caller.Gid
	chown := n.ov.writeback && in.Valid&fuse.FATTR_CTIME != 0
	if uid == 0 || !chown && n.ov.hasWritableHandle(n.key()) {
		return false
	}
	l, p, errno := n.topPath()
	if errno != 0 {
		return false
	}
	var st unix.Stat_t
	if l.lstat(p, &st) != nil {
		return false
	}
	var attr fuse.Attr
	n.ov.statToAttr(&st, &attr)
	if attr.Uid == uid || st.Mode&unix.S_IFMT == unix.S_IFDIR || st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return false
	}
	shown := st
	shown.Gid = attr.Gid // killBits compares with the caller's (mount-side) group
	return st.Mode&killBits(&shown, uid, gid) != 0
}

// capabilityXattr holds a file's capabilities.
const capabilityXattr = "security.capability"
