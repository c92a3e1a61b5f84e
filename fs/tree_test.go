package fs

import (
	"fmt"
	"syscall"
	"testing"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// testTree is a node tree without a mount, and the nodes it let go.
type testTree struct {
	t    *tree
	ov   *overlay
	gone map[*node]int
}

func newTestTree() *testTree {
	tt := &testTree{ov: &overlay{}, gone: map[*node]int{}}
	root := &node{ov: tt.ov}
	tt.t = newTree(root, gofs.StableAttr{Ino: 1}, func(n *node) { tt.gone[n]++ })
	tt.ov.tree = tt.t
	return tt
}

// lookup gives the kernel the object of identity (mode, ino) as name in
// parent, as a LOOKUP does: the known node of that identity, or a new one.
func (tt *testTree) lookup(parent *node, name string, mode uint32, ino uint64) *node {
	id := gofs.StableAttr{Mode: mode, Ino: ino}
	n := tt.t.known(id)
	if n == nil {
		n = &node{ov: tt.ov, inode: inode{attr: id}}
	}
	var out fuse.EntryOut
	return tt.t.register(parent, name, n, false, &out)
}

// TestTreeBringsBackADirectoryItsChildrenKept forgets a directory while
// the kernel still holds a file in it (a hard link, held by its other
// name), then looks the directory up again: the lookup must bring back
// the node that holds the file, so the file's path still leads through
// it, rather than make a second node for the directory.
func TestTreeBringsBackADirectoryItsChildrenKept(t *testing.T) {
	tt := newTestTree()
	root := tt.t.root
	d := tt.lookup(root, "d", syscall.S_IFDIR, 10)
	f := tt.lookup(root, "a", syscall.S_IFREG, 20)
	if again := tt.lookup(d, "f", syscall.S_IFREG, 20); again != f {
		t.Fatal("a second name of a file made a second node")
	}
	if p := f.rel(); p != "d/f" {
		t.Fatalf("path of the file by its newest name: %q", p)
	}
	tt.t.forget(d.nodeID(), 1)
	if d.nodeID() != 0 || len(tt.gone) != 0 {
		t.Fatalf("forgotten directory: id %d, released %v; want id 0, kept for its child", d.nodeID(), tt.gone)
	}
	if back := tt.lookup(root, "d", syscall.S_IFDIR, 10); back != d {
		t.Fatal("a lookup of a directory kept for its children made a second node")
	}
	if p := f.rel(); p != "d/f" {
		t.Errorf("path of the file after its directory came back: %q, want d/f", p)
	}
	if d.nodeID() == 0 {
		t.Error("the directory that came back has no node id")
	}
}

// TestTreeReleasesOnceAndWithParents forgets a file after its directory:
// both leave the tree then, each told once, and their ids are given out
// again.
func TestTreeReleasesOnceAndWithParents(t *testing.T) {
	tt := newTestTree()
	root := tt.t.root
	d := tt.lookup(root, "d", syscall.S_IFDIR, 10)
	f := tt.lookup(d, "f", syscall.S_IFREG, 20)
	did, fid := d.nodeID(), f.nodeID()
	tt.t.forget(did, 1)
	if len(tt.gone) != 0 {
		t.Fatalf("a directory with a held child was released: %v", tt.gone)
	}
	tt.t.forget(fid, 1)
	if tt.gone[f] != 1 || tt.gone[d] != 1 || len(tt.gone) != 2 {
		t.Fatalf("released %v, want the file and the directory once each", tt.gone)
	}
	if !f.Forgotten() || !d.Forgotten() || len(root.Children()) != 0 {
		t.Error("released nodes are still in the tree")
	}
	if tt.t.node(did) != nil || tt.t.node(fid) != nil {
		t.Error("the ids of released nodes still lead to them")
	}
	g := tt.lookup(root, "g", syscall.S_IFREG, 30)
	if id := g.nodeID(); id != did && id != fid {
		t.Errorf("new node got id %d, want a freed one (%d or %d)", id, did, fid)
	}
	if f.NotifyContent(-1, 0) != syscall.ENOENT {
		t.Error("a notification for a released node was not refused")
	}
}

// TestTreeDirectoryHasOneName gives a directory a new name (as a lookup
// after a rename elsewhere would): the old name leaves its parent.
func TestTreeDirectoryHasOneName(t *testing.T) {
	tt := newTestTree()
	root := tt.t.root
	d := tt.lookup(root, "x", syscall.S_IFDIR, 10)
	if tt.lookup(root, "y", syscall.S_IFDIR, 10) != d {
		t.Fatal("a directory's second name made a second node")
	}
	if ch := root.Children(); len(ch) != 1 || ch["y"] != d {
		t.Errorf("root holds %v, want only y", ch)
	}
	if p := d.rel(); p != "y" {
		t.Errorf("path %q, want y", p)
	}
}

// TestTreeHardLinkNames removes and renames names of a file with two:
// its path follows the name it still has.
func TestTreeHardLinkNames(t *testing.T) {
	tt := newTestTree()
	root := tt.t.root
	d := tt.lookup(root, "d", syscall.S_IFDIR, 10)
	f := tt.lookup(root, "a", syscall.S_IFREG, 20)
	tt.lookup(d, "b", syscall.S_IFREG, 20)
	tt.t.remove(d, "b")
	if p := f.rel(); p != "a" {
		t.Fatalf("after removing the newest name: %q, want a", p)
	}
	tt.t.move(root, "a", d, "c", false)
	if p := f.rel(); p != "d/c" {
		t.Fatalf("after a rename: %q, want d/c", p)
	}
	g := tt.lookup(root, "g", syscall.S_IFREG, 30)
	tt.t.move(d, "c", root, "g", true)
	if f.rel() != "g" || g.rel() != "d/c" {
		t.Fatalf("after an exchange: %q and %q, want g and d/c", f.rel(), g.rel())
	}
	tt.t.move(root, "g", d, "c", false) // over g
	if name, _ := g.Parent(); f.rel() != "d/c" || name != "" {
		t.Fatalf("after a rename over another file: %q, and the other's name %q", f.rel(), name)
	}
	tt.t.remove(d, "c")
	if n, p := f.Parent(); p != nil || n != "" {
		t.Errorf("a file with no name left has name %q", n)
	}
}

// TestTreeIdentitiesAfterChurn gives the kernel 40,000 files and takes
// most back, as a walk of a tree larger than the node bound does: the
// identity index shrinks on the way, and still finds each node held, and
// none released.
func TestTreeIdentitiesAfterChurn(t *testing.T) {
	tt := newTestTree()
	root := tt.t.root
	const total, kept = 40000, 1000
	nodes := make([]*node, total)
	for i := range nodes {
		nodes[i] = tt.lookup(root, fmt.Sprint("f", i), syscall.S_IFREG, uint64(100+i))
	}
	for _, n := range nodes[kept:] {
		tt.t.forget(n.nodeID(), 1)
	}
	for i, n := range nodes {
		id := gofs.StableAttr{Mode: syscall.S_IFREG, Ino: uint64(100 + i)}
		if got, want := tt.t.known(id), map[bool]*node{true: n, false: nil}[i < kept]; got != want {
			t.Fatalf("identity of file %d finds %p, want %p", i, got, want)
		}
	}
	if n := tt.t.byAttr.len(); n != kept+1 { // and the root
		t.Errorf("the identity index holds %d, want %d", n, kept+1)
	}
	if size := len(tt.t.byAttr.slots); size > 4*(kept+1) {
		t.Errorf("the identity index keeps %d slots for %d nodes", size, kept+1)
	}
}

// TestTreeLookupCountSticks brings a node's count of lookups to its
// 32-bit top: there it stays, and a FORGET does not release the node,
// whose true count is no longer known; a node below the top is released
// as before.
func TestTreeLookupCountSticks(t *testing.T) {
	tt := newTestTree()
	root := tt.t.root
	f := tt.lookup(root, "f", syscall.S_IFREG, 20)
	g := tt.lookup(root, "g", syscall.S_IFREG, 30)
	f.lookups = maxLookups - 1
	tt.lookup(root, "f", syscall.S_IFREG, 20)
	tt.lookup(root, "f", syscall.S_IFREG, 20)
	if f.lookups != maxLookups {
		t.Fatalf("lookups %d after counting past the top, want %d", f.lookups, uint32(maxLookups))
	}
	tt.t.forget(f.nodeID(), 1<<40)
	if f.nodeID() == 0 || tt.gone[f] != 0 {
		t.Error("a node whose count stuck at the top was released by a FORGET")
	}
	tt.t.forget(g.nodeID(), 1)
	if g.nodeID() != 0 || tt.gone[g] != 1 {
		t.Errorf("a node looked up once and forgotten once: id %d, released %d times", g.nodeID(), tt.gone[g])
	}
}

// TestTreeReleasesTheOldParentOfAMovedDirectory looks a directory up
// under a new name after the kernel forgot it and its parent, which the
// tree kept only for it: the old parent, now empty, leaves the tree
// (found by a review: it used to stay until its identity was looked up
// again).
func TestTreeReleasesTheOldParentOfAMovedDirectory(t *testing.T) {
	tt := newTestTree()
	root := tt.t.root
	d := tt.lookup(root, "d", syscall.S_IFDIR, 10)
	c := tt.lookup(d, "c", syscall.S_IFDIR, 20)
	tt.lookup(c, "a", syscall.S_IFREG, 30)
	tt.t.forget(d.nodeID(), 1)
	tt.t.forget(c.nodeID(), 1)
	if len(tt.gone) != 0 {
		t.Fatalf("released %v while a file below was held", tt.gone)
	}
	if again := tt.lookup(root, "x", syscall.S_IFDIR, 20); again != c {
		t.Fatal("the directory under its new name is a second node")
	}
	if tt.gone[d] != 1 || tt.gone[c] != 0 {
		t.Errorf("released: old parent %d times, the directory %d times; want 1 and 0", tt.gone[d], tt.gone[c])
	}
	if p := c.rel(); p != "x" {
		t.Errorf("path of the directory: %q, want x", p)
	}
	for _, ch := range root.Children() {
		if ch == d {
			t.Error("the old parent is still in the tree")
		}
	}
}

// TestTreeTradeMovesIDsNotNames follows a rename that changed nothing
// between two nodes of one object (two names of an indexed file): the
// kernel moves its dentries, so the node ids and lookup counts must
// change hands while each node keeps its name and identity, every table
// still finding it, and forgetting the ids the kernel holds must then
// release both.
func TestTreeTradeMovesIDsNotNames(t *testing.T) {
	tt := newTestTree()
	root := tt.t.root
	d := tt.lookup(root, "d", syscall.S_IFDIR, 10)
	a := tt.lookup(root, "a", syscall.S_IFREG, 20)
	b := tt.lookup(d, "b", syscall.S_IFREG, 21)
	tt.lookup(d, "b", syscall.S_IFREG, 21) // b: two lookups
	idA, idB := a.nodeID(), b.nodeID()

	tt.t.trade(root, "a", d, "b")
	if a.nodeID() != idB || b.nodeID() != idA {
		t.Fatalf("ids after trade: a %d, b %d; want %d, %d", a.nodeID(), b.nodeID(), idB, idA)
	}
	if tt.t.node(idA) != b || tt.t.node(idB) != a {
		t.Fatal("the id table does not follow the trade")
	}
	if a.rel() != "a" || b.rel() != "d/b" {
		t.Fatalf("names moved: a at %q, b at %q", a.rel(), b.rel())
	}
	if root.GetChild("a") != a || d.GetChild("b") != b {
		t.Fatal("a name no longer finds its node")
	}
	if tt.t.known(a.attr) != a || tt.t.known(b.attr) != b {
		t.Fatal("an identity no longer finds its node")
	}
	// The kernel forgets by the ids it holds: idB (now a's) twice, idA once.
	tt.t.forget(idB, 2)
	if tt.gone[a] != 1 || tt.gone[b] != 0 {
		t.Fatalf("after forgetting a's new id: released %v", tt.gone)
	}
	tt.t.forget(idA, 1)
	if tt.gone[b] != 1 || len(tt.gone) != 2 {
		t.Fatalf("after forgetting b's new id: released %v", tt.gone)
	}
	if n := tt.t.held.Load(); n != 1 {
		t.Fatalf("held nodes: %d, want 1 (d)", n)
	}
}
