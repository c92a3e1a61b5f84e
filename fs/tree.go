package fs

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"

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
// unionfuse added its own state. Here a node is one 128-byte object with
// a slot in the id table and the identity map, and an entry in its
// parent's children map: about half of that (docs/benchmarks.md, "Own
// node tree"). bridge.go serves the FUSE requests over it.

// inode is what the tree keeps of a node.
type inode struct {
	// id is the node id the kernel knows the node by: 1 for the root, 0
	// before the kernel is given the node and after it has forgotten it.
	id uint64
	// attr is the node's identity; it never changes.
	attr gofs.StableAttr
	// lookups counts the lookups the kernel has not yet forgotten.
	lookups uint64
	// parent and name are the name the node was last given (by a lookup,
	// a create or a rename); parent is nil for the root and for a node
	// that has no name any more (removed, or not yet linked).
	parent *node
	name   string
	// more holds the other names of a node that has several (a hard
	// link looked up by more than one name); nil for nearly every node.
	more *[]link
	// children maps the names the kernel holds in a directory to their
	// nodes; nil until the first.
	children map[string]*node
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
	// ids maps a node id to its node; ids[0] is unused, and a free id
	// is nil. free holds the ids that may be given out again: the kernel
	// has forgotten them.
	ids  []*node
	free []uint64
	// byAttr finds the node of an identity, so that every name of an
	// object leads to one node.
	byAttr map[gofs.StableAttr]*node
	// byAttrDeletes counts the deletions from byAttr since it was made:
	// see compactByAttr.
	byAttrDeletes int
	// server sends notifications to the kernel; set once mounted.
	server *fuse.Server
	// onForget runs for each node the tree lets go, outside the lock.
	onForget func(*node)
}

// newTree returns the tree of a union whose root is root, with identity
// attr.
func newTree(root *node, attr gofs.StableAttr, onForget func(*node)) *tree {
	t := &tree{root: root, ids: []*node{nil, root}, byAttr: make(map[gofs.StableAttr]*node), onForget: onForget}
	attr.Mode = syscall.S_IFDIR
	root.attr, root.id, root.lookups = attr, fuse.FUSE_ROOT_ID, 1
	t.byAttr[attr] = root
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
	return t.byAttr[attr]
}

// register gives the kernel child as name in parent (a name of "" for a
// node in no directory: a file made with O_TMPFILE), counting one lookup,
// and returns the node the kernel gets: child, or the node the tree
// already has for child's identity unless exclusive (the object was just
// created, so a node of that identity is a stale one of a recycled inode
// number, which child replaces). It fills in the reply's node id.
func (t *tree) register(parent *node, name string, child *node, exclusive bool, out *fuse.EntryOut) *node {
	t.mu.Lock()
	if old := t.byAttr[child.attr]; old != nil && old != child && !exclusive {
		child = old
	}
	if child.id == 0 {
		child.id = t.newID(child)
	}
	t.byAttr[child.attr] = child
	child.lookups++
	if name != "" {
		t.setEntry(parent, name, child)
	}
	out.NodeId = child.id
	out.Generation = child.attr.Gen
	out.Attr.Ino = child.attr.Ino
	out.Mode = out.Attr.Mode&0o7777 | child.attr.Mode
	t.mu.Unlock()
	return child
}

// newID gives n a node id. Must hold t.mu.
func (t *tree) newID(n *node) uint64 {
	if k := len(t.free); k > 0 {
		id := t.free[k-1]
		t.free = t.free[:k-1]
		t.ids[id] = n
		return id
	}
	t.ids = append(t.ids, n)
	return uint64(len(t.ids) - 1)
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
	if count >= n.lookups {
		n.lookups = 0
	} else {
		n.lookups -= count
	}
	if n.lookups == 0 {
		gone = t.release(n, gone)
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
	if n == t.root || n.lookups > 0 {
		return gone
	}
	if n.id != 0 {
		t.ids[n.id] = nil
		t.free = append(t.free, n.id)
		n.id = 0
	}
	if len(n.children) > 0 {
		// Kept, and found by its identity, so that a lookup of its name
		// brings this node back with its children, not a second one.
		return gone
	}
	if t.byAttr[n.attr] == n {
		delete(t.byAttr, n.attr)
		t.byAttrDeletes++
		t.compactByAttr()
	}
	parents := n.links()
	for _, l := range parents {
		if l.parent.children[l.name] == n {
			delete(l.parent.children, l.name)
		}
	}
	n.parent, n.name, n.more = nil, "", nil
	gone = append(gone, n)
	for _, l := range parents {
		if p := l.parent; p.lookups == 0 && len(p.children) == 0 {
			gone = t.release(p, gone)
		}
	}
	return gone
}

// compactByAttr copies byAttr into a map of its size once it has seen
// more deletions than twice its entries. Go's maps never shrink, and the
// slots a deletion leaves are not all given back: a walk of a tree far
// larger than the node bound made the map, which holds at most the nodes
// the kernel keeps, grow on and on (8.3 MB for 65k nodes after a walk of
// a million names). A copy costs one insertion per entry, paid for by the
// deletions before it. Must hold t.mu.
func (t *tree) compactByAttr() {
	const minDeletes = 16 << 10
	if t.byAttrDeletes < minDeletes || t.byAttrDeletes < 2*len(t.byAttr) {
		return
	}
	fresh := make(map[gofs.StableAttr]*node, len(t.byAttr))
	for k, v := range t.byAttr {
		fresh[k] = v
	}
	t.byAttr, t.byAttrDeletes = fresh, 0
}

// links returns every name of n. Must hold t.mu.
func (n *node) links() []link {
	if n.parent == nil {
		return nil
	}
	ls := []link{{n.parent, n.name}}
	if n.more != nil {
		ls = append(ls, *n.more...)
	}
	return ls
}

// maxReservedChildren caps reserveChildren: a map never shrinks, and the
// node bound (or a reader that stops early) may leave most of a huge
// directory's names out of it.
const maxReservedChildren = 4096

// reserveChildren sizes parent's children map for n names (at most
// maxReservedChildren), unless it has one: a READDIRPLUS reply about to
// give the kernel a node per entry would otherwise grow it step by step,
// a copy each time.
func (t *tree) reserveChildren(parent *node, n int) {
	t.mu.Lock()
	if parent.children == nil && n > 0 {
		parent.children = make(map[string]*node, min(n, maxReservedChildren))
	}
	t.mu.Unlock()
}

// setEntry makes child the node of name in parent; the node that had
// that name before loses it. Must hold t.mu.
func (t *tree) setEntry(parent *node, name string, child *node) {
	if old := parent.children[name]; old != nil {
		if old == child {
			child.promote(parent, name)
			return
		}
		old.dropLink(parent, name)
	}
	if parent.children == nil {
		parent.children = make(map[string]*node)
	}
	parent.children[name] = child
	child.addLink(parent, name)
}

// delEntry takes name out of parent, and returns its node, if any, which
// may have left the tree (see release): gone gets what did. Must hold
// t.mu.
func (t *tree) delEntry(parent *node, name string, gone []*node) (*node, []*node) {
	ch := parent.children[name]
	if ch == nil {
		return nil, gone
	}
	delete(parent.children, name)
	ch.dropLink(parent, name)
	if ch.lookups == 0 && len(ch.children) == 0 {
		gone = t.release(ch, gone)
	}
	return ch, gone
}

// addLink makes name in parent n's newest name. A directory has only
// one: its old name, if any, goes. Must hold t.mu.
func (n *node) addLink(parent *node, name string) {
	if n.parent == parent && n.name == name {
		return
	}
	if n.parent != nil && n.attr.Mode == syscall.S_IFDIR {
		if n.parent.children[n.name] == n {
			delete(n.parent.children, n.name)
		}
		n.parent, n.name = nil, ""
	}
	if n.parent != nil {
		n.dropMore(parent, name)
		if n.more == nil {
			n.more = new([]link)
		}
		*n.more = append(*n.more, link{n.parent, n.name})
	}
	n.parent, n.name = parent, name
}

// promote makes name in parent, already one of n's names, its newest.
func (n *node) promote(parent *node, name string) { n.addLink(parent, name) }

// dropMore removes name in parent from n's other names.
func (n *node) dropMore(parent *node, name string) {
	if n.more == nil {
		return
	}
	ls := *n.more
	for i, l := range ls {
		if l.parent == parent && l.name == name {
			ls = append(ls[:i], ls[i+1:]...)
			break
		}
	}
	if len(ls) == 0 {
		n.more = nil
	} else {
		*n.more = ls
	}
}

// dropLink removes name in parent from n's names; the newest of the
// others, if any, takes its place. Must hold t.mu.
func (n *node) dropLink(parent *node, name string) {
	if n.parent != parent || n.name != name {
		n.dropMore(parent, name)
		return
	}
	n.parent, n.name = nil, ""
	if n.more != nil {
		ls := *n.more
		last := ls[len(ls)-1]
		n.parent, n.name = last.parent, last.name
		n.dropMore(last.parent, last.name)
	}
}

// move renames the entry name in parent to newName in newParent, over
// what was there (RENAME); with exchange the two swap. It returns the
// nodes that left the tree.
func (t *tree) move(parent *node, name string, newParent *node, newName string, exchange bool) []*node {
	var gone []*node
	t.mu.Lock()
	src := parent.children[name]
	dst := newParent.children[newName]
	if src == dst && src != nil {
		t.mu.Unlock()
		return nil
	}
	if src != nil {
		delete(parent.children, name)
		src.dropLink(parent, name)
	}
	if dst != nil {
		delete(newParent.children, newName)
		dst.dropLink(newParent, newName)
	}
	if src != nil {
		t.setEntry(newParent, newName, src)
	}
	if dst != nil {
		if exchange {
			t.setEntry(parent, name, dst)
		} else if dst.lookups == 0 && len(dst.children) == 0 {
			gone = t.release(dst, gone)
		}
	}
	t.mu.Unlock()
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
	return n.children[name]
}

// Children returns the names the kernel holds in the directory n.
func (n *node) Children() map[string]*node {
	t := n.ov.tree
	t.mu.RLock()
	defer t.mu.RUnlock()
	m := make(map[string]*node, len(n.children))
	for k, v := range n.children {
		m[k] = v
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
	return n.id == 0 && n.parent == nil && n != t.root
}

// nodeID returns the id the kernel holds n by, 0 if none.
func (n *node) nodeID() uint64 {
	t := n.ov.tree
	t.mu.RLock()
	defer t.mu.RUnlock()
	return n.id
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

// notifyPrune asks the kernel to forget the nodes, where nobody uses
// them (FUSE_NOTIFY_PRUNE).
func (t *tree) notifyPrune(nodes []*node) syscall.Errno {
	if t.server == nil {
		return syscall.ENOSYS
	}
	ids := make([]uint64, 0, len(nodes))
	t.mu.RLock()
	for _, n := range nodes {
		if n.id != 0 {
			ids = append(ids, n.id)
		}
	}
	t.mu.RUnlock()
	if len(ids) == 0 {
		return 0
	}
	return syscall.Errno(t.server.PruneNotify(ids))
}

// IsRoot reports whether n is the union's root.
func (n *node) IsRoot() bool { return n == n.ov.tree.root }
