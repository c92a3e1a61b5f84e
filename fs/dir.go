package fs

import (
	"context"
	"strings"
	"syscall"
	"unsafe"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/unionfuse/unionfuse/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// listedEntry is one name of a merged listing: 32 bytes (a
// fuse.DirEntry and the layer took 48; a listing of 20,000 names keeps
// 20,000 of them while it is read).
type listedEntry struct {
	Name string
	Ino  uint64
	Mode uint32 // the S_IFMT bits
	// from is the position, in the directory's layer list, of the layer
	// holding the topmost copy: a lookup right after the listing can
	// start there.
	from int32
}

// mergedEntries lists the merged directory rel whose layers are given top
// first: each visible name once, from its topmost layer, with whiteouts and
// the names they hide left out. Like the kernel, it looks for xattr
// whiteouts (which cost a stat per file) only in directories marked as
// holding them (overlay.opaque=x); lookup recognises them everywhere.
func (ov *overlay) mergedEntries(v dirView) ([]listedEntry, syscall.Errno) {
	return ov.appendMerged(nil, v)
}

// appendMerged is mergedEntries appending to head: one slice for the
// listing and what goes before it.
func (ov *overlay) appendMerged(head []listedEntry, v dirView) ([]listedEntry, syscall.Errno) {
	// Every layer is read first, so that the set of names seen is sized
	// once (growing it was a third of the daemon's time listing a large
	// directory) and the bottom layer's names need not enter it. The
	// records stay in the reader's buffers (dirents.go); spans[pos] is
	// where layer pos's are, counts[pos] how many (0 for a layer without
	// the directory).
	var spansBuf [8]direntSpan
	var countsBuf [8]int
	spans, counts := spansBuf[:0], countsBuf[:0]
	last := -1
	var r direntReader
	defer r.release()
	for pos, li := range v.layers {
		sp, count, err := r.read(ov.layers[li], v.path(pos))
		if err != nil {
			if err == unix.ENOENT || err == unix.ENOTDIR {
				spans, counts = append(spans, direntSpan{}), append(counts, 0)
				continue
			}
			return nil, errnoOf(err)
		}
		spans, counts = append(spans, sp), append(counts, count)
		if count > 0 {
			last = pos
		}
	}
	names, bottom := r.records, 0
	if last >= 0 {
		bottom = counts[last]
		names -= bottom
	}
	// The names listed are copied into one block, sized for every name
	// read, so that it never moves; the set of names seen refers to the
	// reader's buffers, and dies with them.
	block := make([]byte, 0, r.nameBytes)
	seen := make(map[string]struct{}, names)
	out := append(make([]listedEntry, 0, len(head)+names+bottom), head...)
	// Upper directories listed, by name, until a lower layer shows what
	// lies below them (see fixListedOrigin).
	var upperDirs map[string]int
	for pos, li := range v.layers {
		l := ov.layers[li]
		rel := v.path(pos)
		if counts[pos] == 0 {
			continue
		}
		xwhiteouts := ov.hasXwhiteouts(l, rel)
		// In an impure upper directory, copies report their origin's
		// number (origin.go), in d_ino as in stat.
		impure := !l.lower && ov.upper != nil && li == 0 && ov.isImpure(rel)
		for name := range l.aufsMarkersOf(rel, r.names(spans[pos])).whiteouts {
			seen[name] = struct{}{}
		}
		it := r.iter(spans[pos])
		for name, dino, typ, ok := it.next(); ok; name, dino, typ, ok = it.next() {
			if _, dup := seen[name]; dup || l.lower && ovlfmt.IsAufsName(name) {
				if i, ok := upperDirs[name]; ok && dup {
					delete(upperDirs, name)
					if typ == unix.DT_DIR {
						ov.fixListedOrigin(v.rel, &out[i], l, join(rel, name))
					}
				}
				continue
			}
			if pos != last {
				seen[name] = struct{}{}
			}
			st := unix.Stat_t{Dev: l.dev, Ino: dino}
			mode := direntMode(typ)
			if typ == unix.DT_CHR || typ == unix.DT_UNKNOWN || typ == unix.DT_REG && xwhiteouts {
				childRel := join(rel, name)
				if err := l.lstat(childRel, &st); err != nil {
					continue // vanished while listing
				}
				if ov.isWhiteout(l, childRel, &st) {
					continue
				}
				mode = st.Mode & unix.S_IFMT
			}
			ino := ov.inoOf(&st)
			if impure {
				if err := l.lstat(join(rel, name), &st); err == nil {
					ino = ov.upperIno(join(rel, name), &st)
				}
			}
			if li == 0 && ov.upper != nil && mode == unix.S_IFDIR {
				if upperDirs == nil {
					upperDirs = make(map[string]int)
				}
				upperDirs[name] = len(out)
			}
			at := len(block)
			block = append(block, name...)
			out = append(out, listedEntry{Name: unsafe.String(&block[at], len(name)), Mode: mode, Ino: ino, from: int32(pos)})
		}
	}
	return out, 0
}

// fixListedOrigin is fixOrigin for e, an upper directory listed in the
// directory rel that lower directory lowerPath of l lies below: as a
// lookup would, it records that origin (unless e is opaque, or has one
// already), so that e's d_ino is the number its stat will report.
func (ov *overlay) fixListedOrigin(rel string, e *listedEntry, l *layer, lowerPath string) {
	childRel := join(rel, e.Name)
	var st unix.Stat_t
	if ov.upper.lstat(childRel, &st) != nil || ov.isOpaque(ov.upper, childRel) {
		return
	}
	ov.fixOrigin(childRel, &st, l, lowerPath)
	e.Ino = ov.upperIno(childRel, &st)
}

// isEmptyDir reports whether the merged directory shows no entries.
func (ov *overlay) isEmptyDir(v dirView) (bool, syscall.Errno) {
	ents, errno := ov.mergedEntries(v)
	return len(ents) == 0, errno
}

// dirHandle is an open merged directory. The listing is taken on the first
// read (and again on rewind) and kept, so telldir/seekdir positions stay
// valid.
type dirHandle struct {
	n       *node
	loaded  bool
	entries []listedEntry
	pos     int
}

// OpendirHandle opens the directory. The kernel may keep the listing in
// its page cache (FOPEN_CACHE_DIR): it drops it by itself whenever the
// directory changes through this mount, and nothing else changes it.
// Without a read, opening costs nothing.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	n.ov.waitInvalidations()
	h := &dirHandle{n: n}
	return h, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

// load takes the merged listing.
func (h *dirHandle) load() syscall.Errno {
	n := h.n
	n.ov.mu.RLock()
	defer n.ov.mu.RUnlock()
	parentIno := n.ino()
	if _, p := n.Parent(); p != nil {
		parentIno = p.StableAttr().Ino
	}
	ents, errno := n.ov.appendMerged([]listedEntry{
		{Name: ".", Mode: unix.S_IFDIR, Ino: n.ino()},
		{Name: "..", Mode: unix.S_IFDIR, Ino: parentIno},
	}, n.view())
	if errno != 0 {
		return errno
	}
	h.entries = ents
	h.pos = 0
	h.loaded = true
	return 0
}

var _ = (gofs.FileReaddirenter)((*dirHandle)(nil))

// Readdirent returns the next entry of the snapshot.
func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	e, ok, errno := h.next()
	if !ok {
		return nil, errno
	}
	return &e, 0
}

// next is Readdirent without a copy on the heap: ok is false at the end
// and on an error.
func (h *dirHandle) next() (fuse.DirEntry, bool, syscall.Errno) {
	if !h.loaded {
		if errno := h.load(); errno != 0 {
			return fuse.DirEntry{}, false, errno
		}
	}
	if h.pos >= len(h.entries) {
		return fuse.DirEntry{}, false, 0
	}
	e := &h.entries[h.pos]
	h.pos++
	return fuse.DirEntry{Name: e.Name, Mode: e.Mode, Ino: e.Ino, Off: uint64(h.pos)}, true, 0
}

// Lookup serves READDIRPLUS for the entry Readdirent just returned: the
// listing says which layer holds it, so the layers in between need not be
// asked again. Upper is always asked, as it may have changed since. It
// returns the child's name as the child may keep it: a copy, not a part
// of the listing's block of names.
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*node, string, syscall.Errno) {
	n := h.n
	if h.pos > 0 && h.pos <= len(h.entries) {
		if e := h.entries[h.pos-1]; e.Name == name && e.Mode&unix.S_IFMT != unix.S_IFDIR && !n.ov.rdplus.wantAttributes() {
			// Listed without attributes: see rdplus.go.
			return nil, "", errSkipAttributes
		}
	}
	name = strings.Clone(name)
	n.ov.mu.RLock()
	defer n.ov.mu.RUnlock()
	v := n.view()
	if h.pos > 0 && h.pos <= len(h.entries) && !n.ov.redirected.Load() {
		if e := h.entries[h.pos-1]; e.Name == name && e.from > 0 && int(e.from) < len(v.layers) {
			skip := v.layers[e.from:]
			if n.ov.upper != nil && v.layers[0] == 0 {
				skip = append([]int{0}, skip...)
			}
			v.layers = skip
		}
	}
	f, errno := n.ov.resolve(v, name)
	if errno != 0 {
		return nil, "", errno
	}
	return n.newChild(name, &f, out), name, 0
}

// errSkipAttributes tells READDIRPLUS (bridge.readDir) to send an entry
// without attributes.
const errSkipAttributes = syscall.EAGAIN

var _ = (gofs.FileSeekdirer)((*dirHandle)(nil))

// Seekdir moves to a position returned earlier; 0 rereads the directory,
// as rewinddir(3) promises.
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off == 0 || !h.loaded {
		if errno := h.load(); errno != 0 {
			return errno
		}
	}
	if off > uint64(len(h.entries)) {
		off = uint64(len(h.entries))
	}
	h.pos = int(off)
	return 0
}

var _ = (gofs.FileFsyncdirer)((*dirHandle)(nil))

// Fsyncdir flushes the directory's upper copy, if it has one.
func (h *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	if h.n.ov.cfg.NoFsync {
		return 0
	}
	if !h.n.isUpper() {
		return 0
	}
	fd, err := unix.Openat(h.n.ov.upper.fd, at(h.n.rel()), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return errnoOf(err)
	}
	defer unix.Close(fd)
	return errnoOf(unix.Fsync(fd))
}

var _ = (gofs.FileReleasedirer)((*dirHandle)(nil))

// Releasedir drops the snapshot.
func (h *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	h.entries = nil
}
