package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// TestPruneBoundsNodes walks a tree of 2,020 names through a mount that
// keeps at most 64 nodes, and checks that the kernel was made to forget
// the rest (the daemon's list is back within the bound), and that what
// was forgotten comes back unchanged: contents, inode numbers (of a
// lower file, a copied-up file and both names of a hard-linked lower
// file), and a file held open while the rest was forgotten.
func TestPruneBoundsNodes(t *testing.T) {
	const dirs, files = 20, 100
	m, merged, lower, _ := mountedForTest(t, Config{MaxNodes: 64}, func(lower string) {
		for d := 0; d < dirs; d++ {
			for f := 0; f < files; f++ {
				p := filepath.Join(lower, fmt.Sprintf("d%02d/f%03d", d, f))
				if f == 0 {
					if err := os.Mkdir(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := os.Link(filepath.Join(lower, "d00/f000"), filepath.Join(lower, "link")); err != nil {
			t.Fatal(err)
		}
	})
	p := m.ov.pruner
	if p == nil {
		t.Fatal("no pruner with MaxNodes 64")
	}

	// Held open while everything else is forgotten.
	held, err := os.Open(filepath.Join(merged, "d19/f099"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	// A copied-up file keeps its inode number.
	cu := filepath.Join(merged, "d05/f005")
	if err := os.WriteFile(cu, []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	inos := map[string]uint64{}
	walk := func(check bool) {
		t.Helper()
		rels := []string{"link", "d00/f000"}
		for d := 0; d < dirs; d++ {
			for f := 0; f < files; f++ {
				rels = append(rels, fmt.Sprintf("d%02d/f%03d", d, f))
			}
		}
		for _, rel := range rels {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(merged, rel), &st); err != nil {
				t.Fatal(err)
			}
			if check && inos[rel] != st.Ino {
				t.Errorf("%s: inode %d after the prune, %d before", rel, st.Ino, inos[rel])
			}
			inos[rel] = st.Ino
		}
	}
	walk(false)
	settle := func() int {
		t.Helper()
		var n int
		for try := 0; try < 200; try++ {
			if n = p.held(); n <= p.max {
				break
			}
			// A lookup wakes the pruning if the last pass stopped early.
			unix.Access(filepath.Join(merged, fmt.Sprintf("d%02d", try%dirs)), unix.F_OK)
			time.Sleep(10 * time.Millisecond)
		}
		return n
	}
	if n := settle(); n > p.max {
		t.Fatalf("after walking %d names the kernel holds %d nodes, want at most %d", dirs*files+dirs, n, p.max)
	}
	// The tree drops a node once the kernel has forgotten it.
	if n := treeSize(p.tree.root) - 1; n > p.max {
		t.Fatalf("after walking %d names the tree holds %d nodes, want at most %d", dirs*files+dirs, n, p.max)
	}
	walk(true)
	settle()
	for d := 0; d < dirs; d++ {
		for f := 0; f < files; f++ {
			rel := fmt.Sprintf("d%02d/f%03d", d, f)
			want := filepath.Join(lower, rel)
			if rel == "d05/f005" {
				want = "changed"
			}
			b, err := os.ReadFile(filepath.Join(merged, rel))
			if err != nil || string(b) != want {
				t.Fatalf("%s after the prune: %q, %v; want %q", rel, b, err, want)
			}
		}
	}
	b := make([]byte, 100)
	if n, err := held.ReadAt(b, 0); string(b[:n]) != filepath.Join(lower, "d19/f099") {
		t.Errorf("the file held open across the prune reads %q, %v", b[:n], err)
	}
}

// treeSize counts the nodes of the tree below and with n.
func treeSize(n *node) int {
	k := 1
	for _, ch := range n.Children() {
		k += treeSize(ch)
	}
	return k
}

// TestPruneIdle checks that a mount left idle has the kernel forget every
// node it is not using, below the bound, keeps an open file working, and
// then calls Config.OnIdle.
func TestPruneIdle(t *testing.T) {
	idle := make(chan struct{}, 1)
	onIdle := func() {
		select {
		case idle <- struct{}{}:
		default:
		}
	}
	m, merged, _, _ := mountedForTest(t, Config{OnIdle: onIdle, IdleTrimAfter: 2 * time.Second}, func(lower string) {
		for f := 0; f < 300; f++ {
			if err := os.WriteFile(filepath.Join(lower, fmt.Sprintf("f%03d", f)), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
	held, err := os.Open(filepath.Join(merged, "f299"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for f := 0; f < 300; f++ {
		if _, err := os.Lstat(filepath.Join(merged, fmt.Sprintf("f%03d", f))); err != nil {
			t.Fatal(err)
		}
	}
	p := m.ov.pruner
	if n := treeSize(p.tree.root) - 1; n < 300 {
		t.Fatalf("the tree holds %d nodes after a lookup of 300 names, under the bound", n)
	}
	select {
	case <-idle:
	case <-time.After(20 * time.Second):
		t.Fatal("OnIdle was not called on an idle mount")
	}
	// The open file stays; a FORGET still on its way may leave one more.
	if n := treeSize(p.tree.root) - 1; n > 2 {
		t.Errorf("the tree holds %d nodes on an idle mount with one file open, want at most 2: %v", n, p.tree.root.Children())
	}
	b := make([]byte, 1)
	if _, err := held.ReadAt(b, 0); err != nil || b[0] != 'x' {
		t.Errorf("the file held open across the idle trim reads %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(merged, "f000")); err != nil || string(b) != "x" {
		t.Errorf("f000 after the idle trim: %q, %v", b, err)
	}
}

// TestRelookupKeepsTheKernelsNode looks names up again that the kernel
// already holds — a READDIRPLUS of a directory whose entries were looked
// up, a link to a file — and checks that the nodes the kernel holds are
// still counted once per object: a lookup
// of a known object refreshes the node the tree keeps instead of making
// one that the tree drops after the reply.
func TestRelookupKeepsTheKernelsNode(t *testing.T) {
	const dirs, files = 40, 40
	m, merged, _, _ := mountedForTest(t, Config{}, func(lower string) {
		for i := 0; i < dirs; i++ {
			if err := os.MkdirAll(filepath.Join(lower, "d", fmt.Sprint("sub", i)), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < files; i++ {
			if err := os.WriteFile(filepath.Join(lower, "d", fmt.Sprint("f", i)), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
	d := filepath.Join(merged, "d")
	for i := 0; i < dirs; i++ {
		if _, err := os.Lstat(filepath.Join(d, fmt.Sprint("sub", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < files; i++ {
		if _, err := os.Lstat(filepath.Join(d, fmt.Sprint("f", i))); err != nil {
			t.Fatal(err)
		}
	}
	want := 1 + dirs + files // d and its entries
	if n := m.HeldNodes(); n != want {
		t.Fatalf("%d nodes held after looking up %d names, want %d", n, want, want)
	}
	// The first listing comes with attributes (READDIRPLUS), and every
	// directory entry is looked up in it.
	ents, err := os.ReadDir(d)
	if err != nil || len(ents) != dirs+files {
		t.Fatalf("listing: %d entries, %v", len(ents), err)
	}
	if err := os.Link(filepath.Join(d, "f0"), filepath.Join(d, "link")); err != nil {
		t.Fatal(err)
	}
	// f0 and link are one object, which keeps its inode number when
	// copied up for the link: one node.
	if n := m.HeldNodes(); n != want {
		t.Errorf("%d nodes held after a listing and a link, want %d: a lookup of a known object made a node of its own", n, want)
	}
}

// TestPruneClockSparesRecentNodes runs the pruner's clock over a tree
// without a mount: the first round spares every node just looked up,
// the next takes the oldest first, never the root and never one id twice
// in a batch; a node looked up again is spared for one more round; a
// forgotten id is skipped, and the count of held nodes follows.
func TestPruneClockSparesRecentNodes(t *testing.T) {
	tt := newTestTree()
	root := tt.t.root
	var files []*node
	for i := range 10 {
		files = append(files, tt.lookup(root, fmt.Sprint("f", i), syscall.S_IFREG, uint64(100+i)))
	}
	if n := tt.t.held.Load(); n != 10 {
		t.Fatalf("%d nodes held after 10 lookups, want 10", n)
	}
	// Every node was just looked up: the hand clears the bits of a whole
	// round, then takes the oldest.
	ids := tt.t.oldest(4)
	want := []uint64{files[0].nodeID(), files[1].nodeID(), files[2].nodeID(), files[3].nodeID()}
	if !slices.Equal(ids, want) {
		t.Fatalf("first batch %v, want the four oldest %v", ids, want)
	}
	// f4 is looked up again: the hand passes it over this round.
	tt.lookup(root, "f4", syscall.S_IFREG, 104)
	// f5 is forgotten: its id is no longer held.
	f5 := files[5].nodeID()
	tt.t.forget(f5, 1)
	if n := tt.t.held.Load(); n != 9 {
		t.Fatalf("%d nodes held after a forget, want 9", n)
	}
	ids = tt.t.oldest(3)
	want = []uint64{files[6].nodeID(), files[7].nodeID(), files[8].nodeID()}
	if !slices.Equal(ids, want) {
		t.Fatalf("second batch %v, want f6-f8 %v (f4 looked up again, f5 forgotten)", ids, want)
	}
	// A batch as large as the tree holds each id once, the root never.
	ids = tt.t.oldest(100)
	seen := map[uint64]bool{}
	for _, id := range ids {
		if id == fuse.FUSE_ROOT_ID || id == f5 || seen[id] {
			t.Fatalf("batch %v has the root, a forgotten id or an id twice", ids)
		}
		seen[id] = true
	}
	if len(ids) == 0 || len(ids) > 9 {
		t.Fatalf("batch of %d ids from a tree holding 9", len(ids))
	}
}
