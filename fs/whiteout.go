package fs

import (
	"github.com/unionfuse/unionfuse/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// isWhiteout reports whether the object rel in layer l, with attributes
// st, hides the name in the layers below: a character device 0/0, or a
// zero-size file with the whiteout attribute (internal/ovlfmt).
func (ov *overlay) isWhiteout(l *layer, rel string, st *unix.Stat_t) bool {
	if ovlfmt.IsWhiteout(st) {
		return true
	}
	if !ovlfmt.MayBeXattrWhiteout(st) {
		return false
	}
	var buf [1]byte
	_, err := l.getxattr(rel, ov.xattr.Whiteout, buf[:])
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
	n, err := l.getxattr(rel, ov.xattr.Opaque, buf[:])
	return err == nil && n == 1 && buf[0] == ovlfmt.Yes[0]
}

// hasXwhiteouts reports whether directory rel in layer l is marked as
// holding xattr whiteouts (overlay.opaque=x), which readdir must filter.
func (ov *overlay) hasXwhiteouts(l *layer, rel string) bool {
	var buf [2]byte
	n, err := l.getxattr(rel, ov.xattr.Opaque, buf[:])
	return err == nil && n == 1 && buf[0] == ovlfmt.HasXwhiteouts[0]
}

// setOpaque marks the upper (or work) directory rel of l opaque.
func (ov *overlay) setOpaque(l *layer, rel string) error {
	return l.setxattr(rel, ov.xattr.Opaque, []byte(ovlfmt.Yes), 0)
}

// markXwhiteouts marks the upper directory rel as holding xattr whiteouts,
// unless it is opaque already (then readdir ignores what is below anyway).
func (ov *overlay) markXwhiteouts(rel string) error {
	if ov.isOpaque(ov.upper, rel) || ov.hasXwhiteouts(ov.upper, rel) {
		return nil
	}
	return ov.upper.setxattr(rel, ov.xattr.Opaque, []byte(ovlfmt.HasXwhiteouts), 0)
}

// isDirStat reports whether st describes a directory.
func isDirStat(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }
