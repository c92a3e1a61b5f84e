package fs

import (
	"context"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is the FUSE inode of one object of the merged view (of one name,
// for a hard-linked lower file: see nodeKey). What is known of the object,
// the layers holding it, is kept on the node (state).
type node struct {
	inode // the kernel's view: node id, identity, names (tree.go)
	ov    *overlay
	// state is what the overlay knows of the object: the layers holding
	// it (see entry). The tree keeps one node per identity, so it is
	// kept on the node; a lookup replaces it.
	state atomic.Pointer[entry]
	// orphanFd is an O_PATH descriptor of the upper copy of a directory
	// removed while the kernel holds it (orphan.go); 0 when none. The
	// kernel sends no request for a node once it has forgotten it, so the
	// descriptor is not closed under a user.
	orphanFd atomic.Int32
	// nchildren counts the names the tree holds in this directory
	// (tree.go; guarded by its lock). Kept next to orphanFd, in what would
	// be padding: a node of 80 bytes takes Go's 80-byte size class.
	nchildren uint32
}

// setState records the layers of n's object, and its paths in them when
// they cannot be derived (nil otherwise; see redirect.go).
func (n *node) setState(layers []int, paths []string) {
	if paths != nil {
		n.ov.redirected.Store(true)
	} else if len(layers) == 1 && layers[0] < len(n.ov.oneLayer) {
		// Most objects live in one layer: share their (immutable) state.
		n.state.Store(n.ov.oneLayer[layers[0]])
		return
	}
	n.state.Store(&entry{layers: layers, paths: paths})
}

// addUpper records that n's object now has an upper copy (after a
// copy-up): on top of its layers for a directory, instead of them for
// anything else.
func (n *node) addUpper(isDir bool) {
	e := n.ov.oneLayer[0]
	if old := n.state.Load(); old != nil && isDir {
		e = &entry{layers: []int{0}}
		e.layers = append(e.layers, old.layers...)
		if old.paths != nil {
			e.paths = append([]string{""}, old.paths...)
		}
	}
	n.state.Store(e)
}

// forgetState drops what is known of n's object, which no longer exists:
// operations on n find nothing from then on.
func (n *node) forgetState() { n.state.Store(nil) }

// rel returns the node's path relative to the union's root ("" for the
// root). A node that is no longer in the tree gets a path that does not
// exist, so operations on it fail with ENOENT rather than hit another file.
func (n *node) rel() string {
	return n.ov.tree.path(n)
}

func (n *node) ino() uint64 { return n.attr.Ino }

func (n *node) key() nodeKey {
	return nodeKey{ino: n.attr.Ino, gen: generation(n.attr.Gen)}
}

// layers returns the layers holding this node, top first.
func (n *node) layers() []int {
	var ls []int
	if e := n.state.Load(); e != nil {
		ls = e.layers
	}
	if len(ls) > 0 && ls[0] != 0 {
		if _, ok := n.indexedName(); ok {
			return []int{n.ov.indexLayer} // index.go
		}
	}
	return ls
}

// isUpper reports whether the node's topmost copy is in the upper layer.
func (n *node) isUpper() bool {
	ls := n.layers()
	return n.ov.upper != nil && len(ls) > 0 && ls[0] == 0
}

// newChild makes (or refreshes) the node for an object just resolved as
// name in n.
func (n *node) newChild(name string, f *found, out *fuse.EntryOut) *node {
	if isDirStat(&f.st) && len(f.layers) > 1 && n.ov.upper != nil && f.layers[0] == 0 {
		n.ov.fixOrigin(join(n.rel(), name), &f.st, n.ov.layers[f.layers[1]], f.pathIn(n, name, 1))
	}
	k := n.ov.keyOf(f, n, name)
	var paths []string
	if f.redirected {
		paths = f.paths
	}
	nlink := int64(-1)
	if ov := n.ov; ov.index != nil && !isDirStat(&f.st) {
		switch {
		case f.layers[0] != 0 && ov.indexing(&f.st):
			if idx, ok := ov.useIndex(f, ov.layers[f.layers[0]], f.pathIn(n, name, 0)); ok {
				nlink = ov.unionNlink(ov.index, idx, &f.st)
			}
		case f.layers[0] == 0 && f.st.Nlink > 1:
			nlink = ov.unionNlink(ov.upper, join(n.rel(), name), &f.st)
		}
	}
	n.ov.statToAttr(&f.st, &out.Attr)
	out.Attr.Ino = k.ino
	if nlink >= 0 {
		out.Attr.Nlink = uint32(nlink)
	}
	if isDirStat(&f.st) {
		mergedDirNlink(f.layers, &out.Attr)
	}
	id := gofs.StableAttr{Mode: f.st.Mode & unix.S_IFMT, Ino: k.ino, Gen: uint64(k.gen)}
	// The node the kernel has for this identity, if any: its state is
	// refreshed. A created object (fresh) always gets a new node: one of
	// its identity is a stale one of a recycled inode number.
	var ch *node
	if !f.fresh {
		ch = n.ov.tree.known(id)
	}
	if ch == nil {
		ch = &node{ov: n.ov, inode: inode{attr: id}}
	}
	if f.dataErr != 0 {
		ch.state.Store(&entry{layers: f.layers, paths: f.paths, dataErr: f.dataErr})
	} else {
		ch.setState(f.layers, paths)
	}
	n.ov.noteInode(k, ch, !isDirStat(&f.st) && f.st.Nlink > 1)
	return ch
}

// toSyscallStat views st as the syscall package's identical struct, which
// go-fuse takes.
func toSyscallStat(st *unix.Stat_t) *syscall.Stat_t {
	return (*syscall.Stat_t)(unsafe.Pointer(st))
}

// stat reads the attributes of the node's topmost copy.
func (n *node) stat(st *unix.Stat_t) syscall.Errno {
	l, p, errno := n.topPath()
	if errno != 0 {
		return errno
	}
	return errnoOf(l.lstat(p, st))
}

// fillAttrOut is fillAttr for a reply that carries a cache timeout: a
// superseded node's attributes must not be cached (see renew).
func (n *node) fillAttrOut(st *unix.Stat_t, out *fuse.AttrOut) {
	n.fillAttr(st, &out.Attr)
	if n.ov.isSuperseded(n.key()) {
		out.SetTimeout(time.Nanosecond)
	}
}

// fillAttr converts st into the attributes the kernel sees.
func (n *node) fillAttr(st *unix.Stat_t, out *fuse.Attr) {
	n.ov.statToAttr(st, out)
	out.Ino = n.ino()
	n.fillDataBlocks(st.Size, &out.Blocks) // a metacopy file's (metacopy.go)
	if isDirStat(st) {
		mergedDirNlink(n.layers(), out)
	} else if n.ov.index != nil {
		if name, ok := n.indexedName(); ok {
			out.Nlink = uint32(n.ov.unionNlink(n.ov.index, name, st))
		} else if st.Nlink > 1 && n.isUpper() {
			out.Nlink = uint32(n.ov.unionNlink(n.ov.upper, n.rel(), st))
		}
	}
}

// mergedDirNlink gives a directory that merges several layers a link
// count of 1, as the kernel's overlay does: no layer's count is right for
// the merged view, and 1 tells find(1) not to count on it.
func mergedDirNlink(layers []int, out *fuse.Attr) {
	if len(layers) > 1 {
		out.Nlink = 1
	}
}

// Getattr reports the attributes of the topmost copy, through the open file
// when there is one (an unlinked file has no path any more).
func (n *node) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := asHandle(f); ok {
		if st, ok := h.fstat(); ok {
			n.fillAttrOut(&st, out)
			return 0
		}
	}
	var st unix.Stat_t
	if ok, err := n.withSupersededCopy(func(p string) error { return unix.Stat(p, &st) }); ok {
		if err != nil {
			return errnoOf(err)
		}
		n.fillAttrOut(&st, out)
		return 0
	}
	n.ov.mu.RLock()
	defer n.ov.mu.RUnlock()
	errno := n.stat(&st)
	if fd := n.orphanFd.Load(); errno != 0 && fd > 0 {
		// A directory removed or replaced while the kernel holds it.
		errno = errnoOf(unix.Fstat(int(fd), &st))
	}
	if errno != 0 {
		return errno
	}
	n.fillAttrOut(&st, out)
	return 0
}

// Readlink returns the target of a symlink.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	n.ov.mu.RLock()
	defer n.ov.mu.RUnlock()
	l, p, errno := n.topPath()
	if errno != 0 {
		return nil, errno
	}
	b, err := l.readlink(p)
	return b, errnoOf(err)
}

// Statfs reports the filesystem of the upper layer (of the top lower layer
// for a read-only union), as the kernel's overlay does.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var s unix.Statfs_t
	if err := unix.Fstatfs(n.ov.layers[0].fd, &s); err != nil {
		return errnoOf(err)
	}
	out.FromStatfsT((*syscall.Statfs_t)(unsafe.Pointer(&s)))
	return 0
}
