package fs

import (
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// For a while, two kernel inodes may name one object:
//
//   - a hard-linked lower file copied up while open: its copy is a new
//     file with its own st_ino (see keyOf), so its name gets a new inode,
//     while the descriptors opened before stay on the old one, whose
//     handles were switched to the upper copy (switchHandles);
//   - with passthrough, a node renewed after a copy-up (renew): same
//     st_ino, new generation, descriptors opened before on the old one;
//   - with index=on, the names of a hard-linked lower file, each a node
//     of its own (keyOf), which share one copy once one is copied up.
//
// The kernel's overlay has a single inode there, so a change made through
// one shows through the other at once: fchmod on a descriptor opened
// before, then stat of the name; chmod of the name, then fstat of the
// descriptor. Here each kernel inode caches attributes of its own, and
// even the superseded one keeps them for a jiffy (its shortest timeout).
// So the kernel inodes of one object form an alias group, and a change
// made through one of them drops the cached attributes of the others.

// aliasGroup holds the kernel inodes that name one object.
type aliasGroup struct {
	mu     sync.Mutex
	inodes []*node
}

// aliasGroups maps the st_ino an object is reported with to its group.
// Guarded by overlay.emu.
type aliasGroups map[uint64]*aliasGroup

// supersede marks n as replaced in the kernel by a new inode for the same
// object, which is now reported with inode number ino: n is never again
// given attributes the kernel may keep (fillAttrOut), and joins the
// object's alias group, which the new inode joins on its lookup. n also
// keeps an O_PATH descriptor of the object's upper copy, at rel now
// (withSupersededCopy).
func (ov *overlay) supersede(n *node, ino uint64, rel string) {
	if fd, err := unix.Openat(ov.upper.fd, at(rel), unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
		n.keepOrphanFd(fd)
	}
	ov.emu.Lock()
	defer ov.emu.Unlock()
	ov.superseded[n.key()] = true
	if _, ok := ov.aliasOf.Load(n); ok {
		return // renewed after a hard link's copy-up: in its group already
	}
	if ov.aliases == nil {
		ov.aliases = make(aliasGroups)
	}
	g := ov.aliases[ino]
	if g == nil {
		g = &aliasGroup{}
		ov.aliases[ino] = g
	}
	ov.addAlias(g, n)
}

// noteInode adds n, just looked up as k, to the alias group
// of k's inode number, if there is one: the new inode of a superseded
// node's object always comes from a lookup. linked says that the object
// is a hard-linked non-directory, whose group is made if need be with
// index=on.
func (ov *overlay) noteInode(k nodeKey, n *node, linked bool) {
	ov.emu.Lock()
	defer ov.emu.Unlock()
	g := ov.aliases[k.ino]
	if g == nil && ov.index != nil && linked {
		// With index=on, the names of a hard-linked lower file are one
		// object (index.go): its upper names (one node) and each of its
		// lower names (one node each), whichever is looked up first.
		if ov.aliases == nil {
			ov.aliases = make(aliasGroups)
		}
		g = &aliasGroup{}
		ov.aliases[k.ino] = g
	}
	if g == nil || ov.superseded[k] {
		return
	}
	if _, ok := ov.aliasOf.Load(n); !ok {
		ov.addAlias(g, n)
	}
}

// addAlias puts n in the alias group g. The group is found by the node
// in a map rather than a field of every node (8 of its bytes, for what
// only hard links copied up while open and index=on make). Must hold
// ov.emu.
func (ov *overlay) addAlias(g *aliasGroup, n *node) {
	g.mu.Lock()
	g.inodes = append(g.inodes, n)
	g.mu.Unlock()
	ov.aliasOf.Store(n, g)
}

// aliasGroupOf returns the alias group of n, nil when it has none. It
// takes no lock: writes ask it, and with index=on any hard-linked file
// puts its union's nodes in groups.
func (n *node) aliasGroupOf() *aliasGroup {
	if g, ok := n.ov.aliasOf.Load(n); ok {
		return g.(*aliasGroup)
	}
	return nil
}

// notifyAliases drops the kernel's cached attributes of the other inodes
// naming n's object, after a change made through n. Cheap (a lookup in
// a sync.Map, without a lock), so it can follow every write.
func (n *node) notifyAliases() {
	g := n.aliasGroupOf()
	if g == nil {
		return
	}
	g.mu.Lock()
	others := make([]*node, 0, len(g.inodes))
	for _, in := range g.inodes {
		if in != n {
			others = append(others, in)
		}
	}
	g.mu.Unlock()
	for _, in := range others {
		// Attributes only; with auto_inval_data the kernel also drops the
		// pages when it sees the new size or mtime. An inode the kernel
		// has forgotten since answers ENOENT, which is harmless.
		in.NotifyContent(-1, 0)
	}
}

// withSupersededCopy calls fn with a /proc/self/fd path of the object of
// n when n is a superseded inode (supersede) that holds a descriptor of
// it; ok is false otherwise. Such an inode is reached only through the
// descriptors opened on it, and its own name may since have been renamed,
// renamed over or removed through the new inode; the kernel's overlay,
// with one inode, still reaches the object, and so does the descriptor.
// The descriptor stays open while fn runs.
func (n *node) withSupersededCopy(fn func(path string) error) (ok bool, err error) {
	if n.IsDir() {
		return false, nil
	}
	// The descriptor first: no lock on the common path (every GETATTR).
	fd := n.orphanFd.Load()
	if fd <= 0 || !n.ov.isSuperseded(n.key()) {
		return false, nil
	}
	return true, fn("/proc/self/fd/" + strconv.Itoa(int(fd)))
}

// notifyChildAliases is notifyAliases for the child name of n, whose link
// count a rename or unlink in n is changing.
func (n *node) notifyChildAliases(name string) {
	if ch := n.GetChild(name); ch != nil {
		ch.notifyAliases()
	}
}
