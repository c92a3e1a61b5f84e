package fs

import (
	"iter"
	"strings"

	"github.com/unionfuse/unionfuse/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// Lower layers may also use the AUFS whiteout format, which OCI image
// layers and containers-storage (for a mount program such as
// fuse-overlayfs or unionfuse) keep on disk: a file ".wh.NAME" hides NAME
// in the layers below, and a file ".wh..wh..opq" makes its directory
// opaque. The marker files themselves are never shown. Upper is always in
// the kernel's format.
//
// Lower layers never change under a mount, so the markers of each lower
// directory are read once (one listing) and kept. The names are
// internal/ovlfmt's.

// aufsDir holds the AUFS markers of one lower directory.
type aufsDir struct {
	opaque    bool
	whiteouts map[string]struct{} // names hidden in the layers below
}

// noAufs is the markers of the (many) directories without any.
var noAufs = &aufsDir{}

// aufsMarkers returns the AUFS markers of directory rel in layer l; none
// for the upper layer.
func (l *layer) aufsMarkers(rel string) *aufsDir {
	if !l.lower {
		return noAufs
	}
	if m, ok := l.aufs.Load(rel); ok {
		return m.(*aufsDir)
	}
	// The names are only looked at: walked where getdents64 put them.
	var r direntReader
	defer r.release()
	sp, _, err := r.read(l, rel)
	if err != nil {
		return noAufs
	}
	return l.aufsMarkersOf(rel, r.names(sp))
}

// aufsMarkersOf records and returns the AUFS markers of lower directory rel
// from the names of its listing, which a readdir has at hand anyway.
func (l *layer) aufsMarkersOf(rel string, names iter.Seq[string]) *aufsDir {
	if !l.lower {
		return noAufs
	}
	if m, ok := l.aufs.Load(rel); ok {
		return m.(*aufsDir)
	}
	m := noAufs
	for name := range names {
		if !ovlfmt.IsAufsName(name) {
			continue
		}
		if m == noAufs {
			m = &aufsDir{whiteouts: map[string]struct{}{}}
		}
		if name == ovlfmt.AufsOpaque {
			m.opaque = true
		} else if hidden, ok := ovlfmt.AufsHidden(name); ok {
			m.whiteouts[strings.Clone(hidden)] = struct{}{} // not the listing's block
		}
	}
	l.aufs.Store(rel, m)
	return m
}

// aufsOpaqueDir reports whether lower directory rel of l holds the AUFS
// opaque marker. It asks for that one name unless the directory's markers
// are known: a lookup checks every lower directory it passes for opacity,
// and a listing only for that would read each directory twice in a walk
// (once more for its own readdir, which records the markers anyway).
func (l *layer) aufsOpaqueDir(rel string) bool {
	if !l.lower {
		return false
	}
	if m, ok := l.aufs.Load(rel); ok {
		return m.(*aufsDir).opaque
	}
	var st unix.Stat_t
	switch err := l.lstat(join(rel, ovlfmt.AufsOpaque), &st); err {
	case nil:
		return true
	case unix.ENOENT, unix.ENOTDIR:
		return false
	}
	// Not searchable (a directory this server may list but not enter,
	// without root) or a path too long: the listing says.
	return l.aufsMarkers(rel).opaque
}

// hidesAufs reports whether name in directory dirRel of layer l is an AUFS
// marker or is whited out by one.
func (l *layer) hidesAufs(dirRel, name string) (marker, whiteout bool) {
	if !l.lower {
		return false, false
	}
	if ovlfmt.IsAufsName(name) {
		return true, false
	}
	_, whiteout = l.aufsMarkers(dirRel).whiteouts[name]
	return false, whiteout
}
