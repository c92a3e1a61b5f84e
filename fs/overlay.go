package fs

import (
	"hash/fnv"
	"log"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/unionfuse/unionfuse/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// overlay is the state shared by every node of one mount.
type overlay struct {
	// rdplus decides which READDIRPLUS entries carry attributes.
	rdplus rdplusPolicy
	// invalPending counts entry invalidations sent in the background.
	invalPending atomic.Int64

	cfg Config
	// tree holds the nodes the kernel is given (tree.go); made by Mount.
	tree *tree
	// layers holds the upper layer first (when there is one), then the
	// lowers top first. Nodes refer to layers by index.
	layers []*layer
	upper  *layer // layers[0], or nil for a read-only union
	work   *layer // WORK/work, where objects are prepared; nil when read-only

	xattr      *ovlfmt.Xattrs // names of the private attributes: trusted or user
	privileged bool           // euid 0: owners of new objects can be set
	euid, egid int            // the server's identity, owner of what it creates
	initUserNS bool           // running in the initial user namespace
	umask      uint32         // the process umask, undone explicitly on create
	log        *log.Logger

	// mu orders namespace changes: lookups and reads take it shared,
	// anything that changes a layer (copy-up, create, remove, rename) takes
	// it exclusively, so a lookup never sees a half-done change.
	mu sync.RWMutex

	// redirect is the redirect_dir mode in force: Config.Redirect, but
	// never following user.overlay.* redirects as root (redirectMode).
	redirect RedirectMode
	// redirected is set once some object's lower paths differ from its
	// merged path (redirect.go); until then no path is ever computed.
	redirected atomic.Bool
	// oneLayer[li] is the state of every object that lives in layer li
	// only, shared (entries are never changed in place).
	oneLayer []*entry
	// rootView is the root directory with every layer.
	rootView dirView
	// bottom is the number of the lowest layer that lookups see.
	bottom int
	// metacopy is Config.Metacopy: metadata-only copy-up (metacopy.go).
	metacopy bool
	// dataLayers are the numbers of the data-only lower layers, after
	// bottom (datalayer.go); empty without.
	dataLayers []int
	// index is WORK/index with index=on (index.go), also the last of
	// layers, number indexLayer; nil (and -1) without.
	index      *layer
	indexLayer int
	// devIndex numbers the filesystems the layers live on; objects on the
	// upper's filesystem keep their inode numbers, others get the index in
	// the high bits (like the kernel's xino) so numbers never collide.
	// Filled while mounting, read-only after.
	devIndex map[uint64]uint64
	// passthrough is set when file data may bypass the server (FUSE
	// passthrough: root only, Linux 6.9+). Set while mounting.
	passthrough bool
	// writeback is set when the kernel keeps written data in its page
	// cache and sends it later (writeback.go). Set while mounting.
	writeback bool

	// emu guards the contents of the maps below it, and nothing else:
	// copiedUp, gens, superseded, aliases (the map; each aliasGroup has a
	// lock of its own), lowerBacked, keptMtimes, openHandles (with each
	// node's set of handles), tmpfiles and indexed. It is held only while
	// they are read or changed, never across a system call or a kernel
	// notification.
	// Lock order: ov.mu, then a handle's mu, then emu, then an
	// aliasGroup's mu.
	emu sync.Mutex
	// copiedUp maps an upper object made by copy-up to the inode number it
	// had before, so st_ino holds still for the life of the mount.
	copiedUp map[devIno]uint64
	// gens holds the current generation of an inode number whose node was
	// renewed after a copy-up (see passthrough.go).
	gens map[uint64]generation
	// superseded holds the nodes renewed away (see renew) and the old
	// nodes of hard-linked lower files copied up (see alias.go).
	superseded map[nodeKey]bool
	// aliases groups the kernel inodes naming one object (alias.go).
	aliases aliasGroups
	// aliasOf finds the group of a node in one (a sync.Map: read without
	// a lock on every write, stored under emu).
	aliasOf sync.Map
	// lowerBacked holds the nodes that have had a lower file as their
	// kernel passthrough backing.
	lowerBacked map[nodeKey]bool
	// keptMtimes holds, with the writeback cache, the modification time
	// the kernel keeps for a file whose pages were written since it last
	// sent one (writeback.go).
	keptMtimes map[nodeKey]unix.Timespec
	// openHandles holds the open upper handles of each node.
	openHandles map[nodeKey]map[*handle]struct{}
	// tmpfiles holds the open handles of O_TMPFILE files not yet linked.
	tmpfiles map[uint64]*handle
	// indexed maps the inode number of a hard-linked lower file to its
	// index entry, once there is one (index.go).
	indexed map[uint64]string

	tmpSeq atomic.Uint64

	// pruner bounds the nodes the kernel holds (prune.go); nil for no bound.
	pruner *pruner
}

type devIno struct{ dev, ino uint64 }

// nodeKey is a node's identity without its type (StableAttr without the
// mode): the reported inode number and a generation.
type nodeKey struct {
	ino uint64
	gen generation
}

// generation tells apart nodes that report the same inode number. It is
// odd for a name of a hard-linked file in a lower layer (lowerLinkGen):
// each name of such a file gets a node of its own (same st_ino), because a
// copy-up through one name must break the link, as it does in the kernel.
// It is even otherwise: 0, then raised by 2 each time the node of its
// inode number is renewed (renewedGen, see passthrough.go).
type generation uint64

// lowerLinkGen returns the generation of the node of a name of a
// hard-linked file in a lower layer, from its path there: odd, and the
// same for a name each time.
func lowerLinkGen(lowerPath string) generation {
	h := fnv.New64a()
	h.Write([]byte(lowerPath))
	return generation(h.Sum64() | 1)
}

// isLowerLink reports whether g is the generation of a name of a
// hard-linked lower file (lowerLinkGen).
func (g generation) isLowerLink() bool { return g&1 == 1 }

// renewedGen returns the generation that follows g for a renewed node,
// even as g is.
func (g generation) renewedGen() generation { return g + 2 }

// entry is what the overlay knows about one object of the merged view.
type entry struct {
	// layers lists the layers holding the object, top first: every
	// contributing layer for a merged directory; for a non-directory, one,
	// or two for a metacopy file: its top copy, then the layer of its data
	// (metacopy.go).
	layers []int
	// paths holds the object's path in each of layers where a redirect
	// was involved (redirect.go); nil when it is derived from the parent.
	paths []string
	// dataErr is set on a metacopy file whose data was not found in the
	// data-only layers: opening it fails with this (metacopy.go).
	dataErr syscall.Errno
}

// inoOf returns the inode number reported for an object with attributes st.
func (ov *overlay) inoOf(st *unix.Stat_t) uint64 {
	ov.emu.Lock()
	defer ov.emu.Unlock()
	if ino, ok := ov.copiedUp[devIno{st.Dev, st.Ino}]; ok {
		return ino
	}
	return ov.ownIno(st)
}

// ownIno is the number an object reports by itself: its inode number, with
// the index of its filesystem in the top 8 bits (unless xino is off).
// devIndex does not change after mounting, so no lock is needed.
func (ov *overlay) ownIno(st *unix.Stat_t) uint64 {
	if ov.cfg.XinoOff {
		return st.Ino
	}
	return st.Ino | ov.devIndex[st.Dev]<<56
}

// keyOf returns the identity of the object f found as name in parent.
func (ov *overlay) keyOf(f *found, parent *node, name string) nodeKey {
	inLower := ov.upper == nil || f.layers[0] != 0
	var k nodeKey
	switch {
	case inLower:
		k.ino = ov.inoOf(&f.st)
	case f.fresh:
		// Nothing was copied up to a new object; a record left for an
		// earlier object of this inode number goes (else the next lookup
		// would report that object's number).
		ov.emu.Lock()
		delete(ov.copiedUp, devIno{f.st.Dev, f.st.Ino})
		ov.emu.Unlock()
		k.ino = ov.ownIno(&f.st)
	default:
		k.ino = ov.upperIno(join(parent.rel(), name), &f.st)
	}
	if inLower && !isDirStat(&f.st) && f.st.Nlink > 1 {
		// By its path in its layer, which a rename of a directory above
		// it leaves as it is (a redirect), unlike its merged path: the
		// name keeps its node, as it keeps its inode in the kernel.
		k.gen = lowerLinkGen(f.pathIn(parent, name, 0))
		return k
	}
	ov.emu.Lock()
	k.gen = ov.gens[k.ino]
	ov.emu.Unlock()
	return k
}

// forget drops what is known about an object that no longer exists, the
// node n (nil if the kernel has not looked it up), and its copy-up record
// (st, the upper object's attributes), so a recycled inode number starts
// afresh.
func (ov *overlay) forget(n *node, st *unix.Stat_t) {
	if n != nil {
		n.forgetState()
	}
	if st != nil {
		ov.emu.Lock()
		delete(ov.copiedUp, devIno{st.Dev, st.Ino})
		ov.emu.Unlock()
	}
}

// recordCopyUp notes that the upper object st now stands for ino.
func (ov *overlay) recordCopyUp(st *unix.Stat_t, ino uint64) {
	ov.emu.Lock()
	if ov.ownIno(st) != ino {
		ov.copiedUp[devIno{st.Dev, st.Ino}] = ino
	}
	ov.emu.Unlock()
}

func (ov *overlay) logf(format string, args ...any) {
	if ov.log != nil {
		ov.log.Printf(format, args...)
	}
}
