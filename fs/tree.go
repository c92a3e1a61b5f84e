package fs

import (
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// The node tree. The kernel names each inode it holds by a node id, and
// keeps a count of the lookups that gave it that id; it sends FORGET with
// the count when it evicts the inode. This file keeps, for every object
// the kernel holds, its node: the id, the identity (type, inode number,
// generation: one node per identity, as hard links need), the count, and
// its place in the tree (the names it was looked up by), from which the
// node's path in the layers is derived.
//
// unionfuse used to keep this in go-fuse's fs package (its Inode and
// rawBridge): about 416 bytes per name — a 128-byte Inode, an identity
// table of two maps and a 64-byte entry per node, and a children map and
// slice in every directory with a parent record per node — before
// unionfuse added its own state. Here a node is one 80-byte object with
// a slot in the id table and one in each of two hash tables of node ids,
// by identity and by name (nodeindex.go): about 125 bytes with its name
// and state (docs/benchmarks.md, "Own node tree", "Node tables without
// maps", "A clock instead of a list", "An 80-byte node and tables of
// node ids"). bridge.go serves the FUSE requests over it.

// inode is what the tree keeps of a node. (A node's count of names in it,
// nchildren, is a field of node itself, where it fits in padding.)
type inode struct {
	// id is the node's place in the tree's id table, and the node id the
	// kernel knows it by while it holds it (lookups above 0): 1 for the
	// root, 0 before the node enters the tree and after it has left. A
	// node the kernel forgot that the tree keeps for its children keeps
	// its id, and gets it again on its next lookup. 32 bits hold it: a
	// tree of four billion nodes would take 300 GB.
	id uint32
	// lookups counts the lookups the kernel has not yet forgotten, up to
	// maxLookups, where it sticks (see countLookup).
	lookups uint32
	// attr is the node's identity; it never changes.
	attr gofs.StableAttr
	// parent and name are the name the node was last given (by a lookup,
	// a create or a rename); parent is nil for the root and for a node
	// that has no name any more (removed, or not yet linked). A node with
	// several names (a hard link looked up by more than one) has the
	// others in the tree's otherNames.
	parent *node
	name   string
}

// link is one name of a node: name in parent.
type link struct {
	parent *node
	name   string
}

// tree holds the nodes of one union. Its lock guards every inode field
// but attr, and the tables; it is held only for table and pointer work,
// never across a system call, a notification or a call into the overlay.
type tree struct {
	mu   sync.RWMutex
	root *node
	// ids maps a node id to its node, for every node in the tree; ids[0]
	// is unused, and a free id is nil. free holds the ids that may be
	// given out again: their nodes have left the tree.
	ids  []*node
	free []uint32
	// held counts the nodes the kernel holds (lookups above 0), the
	// root's aside (prune.go). Written under mu, read without it.
	held atomic.Int64
	// recent has a bit per node id, set when the kernel is given the node
	// and cleared when the pruner's hand passes it (prune.go); hand is the
	// next id the hand looks at.
	recent []uint64
	hand   uint64
	// byAttr finds the node of an identity, so that every name of an
	// object leads to one node.
	byAttr *nodeIndex[gofs.StableAttr]
	// byName finds a node by its newest name (parent and name): every
	// node that has a name is in it. The other names of the few nodes
	// that have several are in otherNames, and listed per node, oldest
	// first, in others.
	byName     *nodeIndex[link]
	otherNames map[link]*node
	others     map[*node][]link
	// server sends notifications to the kernel; set once mounted.
	server *fuse.Server
	// onForget runs for each node the tree lets go, outside the lock.
	onForget func(*node)
}

// newTree returns the tree of a union whose root is root, with identity
// attr.
func newTree(root *node, attr gofs.StableAttr, onForget func(*node)) *tree {
	seed := maphash.MakeSeed()
	t := &tree{
		root:     root,
		ids:      []*node{nil, root},
		onForget: onForget,
	}
	// Keys hash with a seeded maphash, so that no one can choose
	// identities or names that collide.
	t.byAttr = newNodeIndex(&t.ids, func(n *node) gofs.StableAttr { return n.attr }, func(a gofs.StableAttr) uint64 {
		return maphash.Comparable(seed, a)
	})
	// The directory is mixed in by its address, which does not change (Go
	// does not move what is on the heap).
	t.byName = newNodeIndex(&t.ids, func(n *node) link { return link{n.parent, n.name} }, func(l link) uint64 {
		return maphash.String(seed, l.name) ^ mix64(uint64(uintptr(unsafe.Pointer(l.parent))))
	})
	attr.Mode = syscall.S_IFDIR
	root.attr, root.id, root.lookups = attr, fuse.FUSE_ROOT_ID, 1
	t.byAttr.put(root)
	return t
}

// node returns the node of a node id the kernel sent, or nil for an id
// it should not have (the kernel sends only ids it holds).
func (t *tree) node(id uint64) *node {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if id < uint64(len(t.ids)) {
		return t.ids[id]
	}
	return nil
}

// known returns the node the tree has for identity attr, or nil.
func (t *tree) known(attr gofs.StableAttr) *node {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byAttr.get(attr)
}

// register gives the kernel child as name in parent (a name of "" for a
// node in no directory: a file made with O_TMPFILE), counting one lookup,
// and returns the node the kernel gets: child, or the node the tree
// already has for child's identity unless exclusive (the object was just
// created, so a node of that identity is a stale one of a recycled inode
// number, which child replaces). It fills in the reply's node id.
func (t *tree) register(parent *node, name string, child *node, exclusive bool, out *fuse.EntryOut) *node {
	t.mu.Lock()
	if old := t.byAttr.get(child.attr); old != nil && old != child && !exclusive {
		child = old
	}
	if child.id == 0 {
		child.id = t.newID(child)
	}
	t.byAttr.put(child)
	if child.lookups == 0 {
		t.held.Add(1)
	}
	child.countLookup()
	t.markRecent(uint64(child.id))
	var gone []*node
	if name != "" {
		gone = t.setEntry(parent, name, child, gone)
	}
	out.NodeId = uint64(child.id)
	out.Generation = child.attr.Gen
	out.Attr.Ino = child.attr.Ino
	out.Mode = out.Attr.Mode&0o7777 | child.attr.Mode
	t.mu.Unlock()
	for _, g := range gone {
		t.onForget(g)
	}
	return child
}

// newID gives n a node id. Must hold t.mu.
func (t *tree) newID(n *node) uint32 {
	if k := len(t.free); k > 0 {
		id := t.free[k-1]
		t.free = t.free[:k-1]
		t.ids[id] = n
		return id
	}
	t.ids = append(t.ids, n)
	return uint32(len(t.ids) - 1)
}

// freeID takes n's id back: n has left the tree. Must hold t.mu.
func (t *tree) freeID(n *node) {
	t.ids[n.id] = nil
	t.free = append(t.free, n.id)
	n.id = 0
}

// maxLookups is where a node's count of lookups sticks: the kernel would
// have to look a node up four billion times without forgetting it. A
// node whose count stuck is never released, rather than released while
// the kernel may still hold it.
const maxLookups = math.MaxUint32

// countLookup counts one more lookup of n. Must hold t.mu.
func (n *node) countLookup() {
	if n.lookups < maxLookups {
		n.lookups++
	}
}

// forget takes back count lookups of node id (FORGET). A node the kernel
// no longer holds, and that has no children held, leaves the tree, and so
// do the directories that only it kept there.
func (t *tree) forget(id, count uint64) {
	var gone []*node
	t.mu.Lock()
	var n *node
	if id < uint64(len(t.ids)) {
		n = t.ids[id]
	}
	if n == nil || n == t.root {
		t.mu.Unlock()
		return
	}
	switch {
	case n.lookups == maxLookups:
		// Stuck: the true count is not known.
	case n.lookups == 0:
		// Not held: a FORGET that came twice.
	case count >= uint64(n.lookups):
		n.lookups = 0
		t.held.Add(-1)
		gone = t.release(n, gone)
	default:
		n.lookups -= uint32(count)
	}
	t.mu.Unlock()
	for _, g := range gone {
		t.onForget(g)
	}
}

// release unregisters n, whose lookups are all forgotten, and takes it
// out of the tree unless it still has children; so on for the parents
// that only n kept there. It appends what left the tree to gone. Must
// hold t.mu.
func (t *tree) release(n *node, gone []*node) []*node {
	if n == t.root || n.lookups > 0 || n.id == 0 {
		return gone
	}
	if n.nchildren > 0 {
		// Kept, and found by its identity, so that a lookup of its name
		// brings this node back with its children, not a second one.
		return gone
	}
	t.byAttr.remove(n)
	parents := t.links(n)
	for _, l := range parents {
		t.dropName(n, l.parent, l.name)
	}
	t.freeID(n) // last: the tables find their nodes by id
	gone = append(gone, n)
	for _, l := range parents {
		if p := l.parent; p.lookups == 0 && p.nchildren == 0 {
			gone = t.release(p, gone)
		}
	}
	return gone
}

// links returns every name of n. Must hold t.mu.
func (t *tree) links(n *node) []link {
	if n.parent == nil {
		return nil
	}
	return append([]link{{n.parent, n.name}}, t.others[n]...)
}

// child returns the node of name in parent, or nil. Must hold t.mu.
func (t *tree) child(parent *node, name string) *node {
	l := link{parent, name}
	if n := t.byName.get(l); n != nil {
		return n
	}
	return t.otherNames[l]
}

// setEntry makes child the node of name in parent; the node that had
// that name before loses it. It appends what left the tree to gone (see
// addName). Must hold t.mu.
func (t *tree) setEntry(parent *node, name string, child *node, gone []*node) []*node {
	if old := t.child(parent, name); old != nil {
		if old == child {
			t.promote(child, parent, name)
			return gone
		}
		t.dropName(old, parent, name)
	}
	return t.addName(child, parent, name, gone)
}

// delEntry takes name out of parent, and returns its node, if any, which
// may have left the tree (see release): gone gets what did. Must hold
// t.mu.
func (t *tree) delEntry(parent *node, name string, gone []*node) (*node, []*node) {
	ch := t.child(parent, name)
	if ch == nil {
		return nil, gone
	}
	t.dropName(ch, parent, name)
	if ch.lookups == 0 && ch.nchildren == 0 {
		gone = t.release(ch, gone)
	}
	return ch, gone
}

// addName gives n the name name in parent, which no node has, as its
// newest. A directory has only one: its old name, if any, goes. Must
// hold t.mu.
func (t *tree) addName(n *node, parent *node, name string, gone []*node) []*node {
	if n.parent != nil {
		if n.attr.Mode == syscall.S_IFDIR {
			// A directory found under a new name: the old parent may
			// have been kept only for it, the kernel having forgotten
			// it; then it leaves the tree (gone gets it).
			old := n.parent
			t.dropName(n, old, n.name)
			if old != parent && old.lookups == 0 && old.nchildren == 0 {
				gone = t.release(old, gone)
			}
		} else {
			t.demote(n)
		}
	}
	n.parent, n.name = parent, name
	t.byName.put(n)
	parent.nchildren++
	return gone
}

// demote moves n's newest name to its other names, leaving it none in
// byName. Must hold t.mu.
func (t *tree) demote(n *node) {
	t.byName.remove(n)
	l := link{n.parent, n.name}
	if t.otherNames == nil {
		t.otherNames, t.others = make(map[link]*node), make(map[*node][]link)
	}
	t.otherNames[l] = n
	t.others[n] = append(t.others[n], l)
	n.parent, n.name = nil, ""
}

// promote makes name in parent, one of n's names, its newest. Must hold
// t.mu.
func (t *tree) promote(n *node, parent *node, name string) {
	if n.parent == parent && n.name == name {
		return
	}
	t.dropOther(n, link{parent, name})
	t.demote(n)
	n.parent, n.name = parent, name
	t.byName.put(n)
}

// dropOther removes l from n's other names, and reports whether it was
// one. Must hold t.mu.
func (t *tree) dropOther(n *node, l link) bool {
	ls := t.others[n]
	i := slices.Index(ls, l)
	if i < 0 {
		return false
	}
	ls = slices.Delete(ls, i, i+1)
	delete(t.otherNames, l)
	if len(ls) == 0 {
		delete(t.others, n)
	} else {
		t.others[n] = ls
	}
	return true
}

// dropName removes name in parent from n's names, if it is one; the
// newest of the others, if any, takes its place. Must hold t.mu.
func (t *tree) dropName(n *node, parent *node, name string) {
	if n.parent != parent || n.name != name {
		if t.dropOther(n, link{parent, name}) {
			parent.nchildren--
		}
		return
	}
	parent.nchildren--
	t.byName.remove(n)
	n.parent, n.name = nil, ""
	if ls := t.others[n]; len(ls) > 0 {
		last := ls[len(ls)-1]
		t.dropOther(n, last)
		n.parent, n.name = last.parent, last.name
		t.byName.put(n)
	}
}

// move renames the entry name in parent to newName in newParent, over
// what was there (RENAME); with exchange the two swap. It returns the
// nodes that left the tree.
func (t *tree) move(parent *node, name string, newParent *node, newName string, exchange bool) []*node {
	var gone []*node
	t.mu.Lock()
	src := t.child(parent, name)
	dst := t.child(newParent, newName)
	if src == dst && src != nil {
		t.mu.Unlock()
		return nil
	}
	if src != nil {
		t.dropName(src, parent, name)
	}
	if dst != nil {
		t.dropName(dst, newParent, newName)
	}
	if src != nil {
		gone = t.setEntry(newParent, newName, src, gone)
	}
	if dst != nil {
		if exchange {
			gone = t.setEntry(parent, name, dst, gone)
		} else if dst.lookups == 0 && dst.nchildren == 0 {
			gone = t.release(dst, gone)
		}
	}
	t.mu.Unlock()
	return gone
}

// trade follows a rename that moved nothing, name in parent and newName
// in newParent being one object, when the tree has a node for each (see
// node.Rename): the kernel, which sees two inodes, moves the dentry of
// name to newName (and, with RENAME_EXCHANGE, the other's to name). Each
// node stays where it is, since what it knows (its identity, the layers
// of its name) is of its name; the two trade their node ids and the
// kernel's lookups of them instead, so that each id stands for the name
// the kernel's dentry now gives it. After a plain rename the kernel has
// no dentry of name: its node keeps the id the kernel holds until it
// forgets it. It returns the nodes that left the tree.
func (t *tree) trade(parent *node, name string, newParent *node, newName string) []*node {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, b := t.child(parent, name), t.child(newParent, newName)
	if a == nil || b == nil || a == b {
		return nil
	}
	// The tables find a node by its id: out while the ids change hands.
	aNamed, bNamed := t.byName.remove(a), t.byName.remove(b)
	t.byAttr.remove(a)
	t.byAttr.remove(b)
	a.id, b.id = b.id, a.id
	a.lookups, b.lookups = b.lookups, a.lookups
	t.ids[a.id], t.ids[b.id] = a, b
	t.byAttr.put(a)
	t.byAttr.put(b)
	if aNamed {
		t.byName.put(a)
	}
	if bNamed {
		t.byName.put(b)
	}
	var gone []*node
	for _, n := range []*node{a, b} {
		if n.lookups == 0 && n.nchildren == 0 {
			gone = t.release(n, gone)
		}
	}
	return gone
}

// remove takes name out of parent (UNLINK, RMDIR) and runs onForget for
// what left the tree.
func (t *tree) remove(parent *node, name string) {
	t.mu.Lock()
	_, gone := t.delEntry(parent, name, nil)
	t.mu.Unlock()
	for _, g := range gone {
		t.onForget(g)
	}
}

// path returns n's path from the root ("" for the root). A node with no
// name any more gets a path under a directory that no layer has, so that
// operations on it fail with ENOENT rather than reach another file.
func (t *tree) path(n *node) string {
	if n == t.root {
		return ""
	}
	var names [16]string
	segs := names[:0]
	t.mu.RLock()
	p := n
	for p != nil && p != t.root {
		segs = append(segs, p.name)
		p = p.parent
	}
	t.mu.RUnlock()
	if p == nil {
		return fmt.Sprintf(".unionfuse-%016x/deleted", rand.Uint64())
	}
	if len(segs) == 1 {
		return segs[0]
	}
	size := len(segs) - 1
	for _, s := range segs {
		size += len(s)
	}
	var b strings.Builder
	b.Grow(size)
	for i := len(segs) - 1; i >= 0; i-- {
		b.WriteString(segs[i])
		if i > 0 {
			b.WriteByte('/')
		}
	}
	return b.String()
}

// Parent returns n's newest name and its directory, or "" and nil for
// the root and a node with no name.
func (n *node) Parent() (string, *node) {
	t := n.ov.tree
	t.mu.RLock()
	defer t.mu.RUnlock()
	return n.name, n.parent
}

// GetChild returns the node of name in the directory n, if the kernel
// holds it.
func (n *node) GetChild(name string) *node {
	t := n.ov.tree
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.child(n, name)
}

// Children returns the names the kernel holds in the directory n. It
// reads every name the tree holds: for tests and debugging.
func (n *node) Children() map[string]*node {
	t := n.ov.tree
	t.mu.RLock()
	defer t.mu.RUnlock()
	m := make(map[string]*node, n.nchildren)
	for ch := range t.byName.all() {
		if ch.parent == n {
			m[ch.name] = ch
		}
	}
	for l, ch := range t.otherNames {
		if l.parent == n {
			m[l.name] = ch
		}
	}
	return m
}

// StableAttr returns n's identity.
func (n *node) StableAttr() gofs.StableAttr { return n.attr }

// IsDir reports whether n is a directory.
func (n *node) IsDir() bool { return n.attr.Mode == syscall.S_IFDIR }

// Forgotten reports whether n has left the tree: the kernel does not hold
// it, and it has no name.
func (n *node) Forgotten() bool {
	t := n.ov.tree
	t.mu.RLock()
	defer t.mu.RUnlock()
	return n.lookups == 0 && n.parent == nil && n != t.root
}

// nodeID returns the id the kernel holds n by, 0 if none.
func (n *node) nodeID() uint64 {
	t := n.ov.tree
	t.mu.RLock()
	defer t.mu.RUnlock()
	if n.lookups == 0 {
		return 0
	}
	return uint64(n.id)
}

// NotifyContent tells the kernel that n's data from off (sz bytes; 0 for
// all) is stale, or with off -1 only its attributes.
func (n *node) NotifyContent(off, sz int64) syscall.Errno {
	id, s := n.nodeID(), n.ov.tree.server
	if id == 0 || s == nil {
		return syscall.ENOENT
	}
	return syscall.Errno(s.InodeNotify(id, off, sz))
}

// NotifyEntry tells the kernel that name in the directory n is stale.
func (n *node) NotifyEntry(name string) syscall.Errno {
	id, s := n.nodeID(), n.ov.tree.server
	if id == 0 || s == nil {
		return syscall.ENOENT
	}
	return syscall.Errno(s.EntryNotify(id, name))
}

// notifyPrune asks the kernel to forget the nodes of ids, where nobody uses
// them (FUSE_NOTIFY_PRUNE).
func (t *tree) notifyPrune(ids []uint64) syscall.Errno {
	if t.server == nil {
		return syscall.ENOSYS
	}
	return syscall.Errno(t.server.PruneNotify(ids))
}

// IsRoot reports whether n is the union's root.
func (n *node) IsRoot() bool { return n == n.ov.tree.root }
