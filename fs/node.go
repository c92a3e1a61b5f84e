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

// node is one object of the merged view. Its state (which layers hold it)
// lives in overlay.entries under its inode number; see overlay.entry.
type node struct {
	gofs.Inode
	ov *overlay
	// alias is the group of kernel inodes naming this node's object, when
	// there are several (see alias.go).
	alias atomic.Pointer[aliasGroup]
}

// rel returns the node's path relative to the union's root ("" for the
// root). A node that is no longer in the tree gets a path that does not
// exist, so operations on it fail with ENOENT rather than hit another file.
func (n *node) rel() string {
	return n.Path(n.Root())
}

func (n *node) ino() uint64 { return n.StableAttr().Ino }

func (n *node) key() nodeKey {
	a := n.StableAttr()
	return nodeKey{ino: a.Ino, gen: a.Gen}
}

// layers returns the layers holding this node, top first.
func (n *node) layers() []int { return n.ov.layersOf(n.key()) }

// top returns the topmost layer holding the node.
func (n *node) top() (*layer, syscall.Errno) {
	ls := n.layers()
	if len(ls) == 0 {
		return nil, syscall.ENOENT
	}
	return n.ov.layers[ls[0]], 0
}

// isUpper reports whether the node's topmost copy is in the upper layer.
func (n *node) isUpper() bool {
	ls := n.layers()
	return n.ov.upper != nil && len(ls) > 0 && ls[0] == 0
}

// found is the result of resolving one name in a directory.
type found struct {
	layers []int
	st     unix.Stat_t // attributes of the topmost object
}

// resolve looks name up in the layers of the directory dirRel (given top
// first in dirLayers), applying whiteouts, opaque directories and the rule
// that a non-directory hides everything below it. ENOENT when hidden or
// absent.
func (ov *overlay) resolve(dirLayers []int, dirRel, name string) (found, syscall.Errno) {
	var f found
	rel := join(dirRel, name)
	for _, li := range dirLayers {
		l := ov.layers[li]
		marker, whiteout := l.hidesAufs(dirRel, name)
		if marker {
			continue // AUFS markers are not names of the merged view
		}
		if whiteout {
			break
		}
		var st unix.Stat_t
		if err := l.lstat(rel, &st); err != nil {
			if err == unix.ENOENT || err == unix.ENOTDIR {
				continue
			}
			return f, errnoOf(err)
		}
		if ov.isWhiteout(l, rel, &st) {
			break
		}
		if len(f.layers) == 0 {
			f.st = st
			f.layers = []int{li}
			if !isDirStat(&st) || ov.isOpaque(l, rel) {
				break
			}
			continue
		}
		if !isDirStat(&st) {
			break
		}
		f.layers = append(f.layers, li)
		if ov.isOpaque(l, rel) {
			break
		}
	}
	if len(f.layers) == 0 {
		return f, syscall.ENOENT
	}
	return f, 0
}

// lowerHasName reports whether name exists (not as a whiteout) in any layer
// of the directory below the upper one: removing it from the merged view
// then needs a whiteout.
func (ov *overlay) lowerHasName(dirLayers []int, dirRel, name string) (bool, syscall.Errno) {
	lower := dirLayers
	if len(lower) > 0 && ov.upper != nil && lower[0] == 0 {
		lower = lower[1:]
	}
	f, errno := ov.resolve(lower, dirRel, name)
	if errno == syscall.ENOENT {
		return false, 0
	}
	return errno == 0 && len(f.layers) > 0, errno
}

// newChild makes (or refreshes) the Inode for an object just resolved.
func (n *node) newChild(ctx context.Context, name string, f *found, out *fuse.EntryOut) *gofs.Inode {
	k := n.ov.keyOf(f, join(n.rel(), name))
	n.ov.setEntry(k, f.layers)
	n.ov.statToAttr(&f.st, &out.Attr)
	out.Attr.Ino = k.ino
	child := &node{ov: n.ov}
	in := n.NewInode(ctx, child, gofs.StableAttr{Mode: f.st.Mode & unix.S_IFMT, Ino: k.ino, Gen: k.gen})
	n.ov.noteInode(k, in)
	return in
}

// toSyscallStat views st as the syscall package's identical struct, which
// go-fuse takes.
func toSyscallStat(st *unix.Stat_t) *syscall.Stat_t {
	return (*syscall.Stat_t)(unsafe.Pointer(st))
}

var _ = (gofs.NodeLookuper)((*node)(nil))

// Lookup resolves name through the directory's layers.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.ov.rdplus.noteLookup()
	n.ov.mu.RLock()
	defer n.ov.mu.RUnlock()
	f, errno := n.ov.resolve(n.layers(), n.rel(), name)
	if errno != 0 {
		return nil, errno
	}
	return n.newChild(ctx, name, &f, out), 0
}

// stat reads the attributes of the node's topmost copy.
func (n *node) stat(st *unix.Stat_t) syscall.Errno {
	l, errno := n.top()
	if errno != 0 {
		return errno
	}
	return errnoOf(l.lstat(n.rel(), st))
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
}

var _ = (gofs.NodeGetattrer)((*node)(nil))

// Getattr reports the attributes of the topmost copy, through the open file
// when there is one (an unlinked file has no path any more).
func (n *node) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := asHandle(f); ok {
		if st, ok := h.fstat(); ok {
			n.fillAttrOut(&st, out)
			return 0
		}
	}
	n.ov.mu.RLock()
	defer n.ov.mu.RUnlock()
	var st unix.Stat_t
	errno := n.stat(&st)
	if dh, ok := f.(*dirHandle); ok && errno != 0 && dh.fd >= 0 {
		// An open directory that was removed or replaced since.
		errno = errnoOf(unix.Fstat(dh.fd, &st))
	}
	if errno != 0 {
		return errno
	}
	n.fillAttrOut(&st, out)
	return 0
}

var _ = (gofs.NodeReadlinker)((*node)(nil))

// Readlink returns the target of a symlink.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	n.ov.mu.RLock()
	defer n.ov.mu.RUnlock()
	l, errno := n.top()
	if errno != 0 {
		return nil, errno
	}
	b, err := l.readlink(n.rel())
	return b, errnoOf(err)
}

var _ = (gofs.NodeStatfser)((*node)(nil))

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
