package fs

import (
	"golang.org/x/sys/unix"
)

// Names of the overlay's private extended attributes, relative to the
// prefix (trusted.overlay. or user.overlay.).
const (
	xattrOpaque   = "opaque"
	xattrWhiteout = "whiteout"
)

// isWhiteoutStat reports whether st is a kernel whiteout: a character
// device with device number 0/0.
func isWhiteoutStat(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// mayBeXattrWhiteout reports whether st could be the kernel's alternative
// whiteout, a zero-size regular file carrying the overlay.whiteout xattr.
func mayBeXattrWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == 0
}

// isWhiteout reports whether the object rel in layer l, with attributes
// st, hides the name in the layers below.
func (ov *overlay) isWhiteout(l *layer, rel string, st *unix.Stat_t) bool {
	if isWhiteoutStat(st) {
		return true
	}
	if !mayBeXattrWhiteout(st) {
		return false
	}
	var buf [1]byte
	_, err := l.getxattr(rel, ov.xattrPrefix+xattrWhiteout, buf[:])
	return err == nil || err == unix.ERANGE
}

// isOpaque reports whether directory rel in layer l is opaque: the kernel's
// overlay.opaque=y. The value "x" only marks a directory that holds
// xattr whiteouts and is not opaque.
func (ov *overlay) isOpaque(l *layer, rel string) bool {
	if l.aufsOpaqueDir(rel) {
		return true
	}
	var buf [2]byte
	n, err := l.getxattr(rel, ov.xattrPrefix+xattrOpaque, buf[:])
	return err == nil && n == 1 && buf[0] == 'y'
}

// hasXwhiteouts reports whether directory rel in layer l is marked as
// holding xattr whiteouts (overlay.opaque=x), which readdir must filter.
func (ov *overlay) hasXwhiteouts(l *layer, rel string) bool {
	var buf [2]byte
	n, err := l.getxattr(rel, ov.xattrPrefix+xattrOpaque, buf[:])
	return err == nil && n == 1 && buf[0] == 'x'
}

// makeXattrWhiteout makes the kernel's alternative whiteout at path
// (relative to dirfd), for where a character device 0/0 cannot be made: a
// zero-size file with the overlay.whiteout attribute. Its directory must
// then be marked as holding such whiteouts (overlay.opaque=x) for readdir;
// see markXwhiteouts.
func (ov *overlay) makeXattrWhiteout(dirfd int, path string) error {
	fd, err := unix.Openat(dirfd, path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fsetxattr(fd, ov.xattrPrefix+xattrWhiteout, []byte("y"), 0)
}

// markXwhiteouts marks the upper directory rel as holding xattr whiteouts,
// unless it is opaque already (then readdir ignores what is below anyway).
func (ov *overlay) markXwhiteouts(rel string) error {
	if ov.isOpaque(ov.upper, rel) || ov.hasXwhiteouts(ov.upper, rel) {
		return nil
	}
	return ov.upper.setxattr(rel, ov.xattrPrefix+xattrOpaque, []byte("x"), 0)
}

// isDirStat reports whether st describes a directory.
func isDirStat(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }
