package fs

import (
	"math/rand/v2"
	"testing"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// TestNodeIndexAgainstMap runs random puts and removes on an index and on
// a Go map side by side, with a good hash and with one that sends every
// key to a few slots (long runs that wrap round the table's end, which is
// where a backward shift can go wrong), and compares every key after
// each step.
func TestNodeIndexAgainstMap(t *testing.T) {
	hashes := map[string]func(uint64) uint64{
		"mixed":   mix64,
		"clumped": func(k uint64) uint64 { return k%3 + 1<<62 - 2 }, // near the end of any table
	}
	for name, hash := range hashes {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			// Nodes are keyed by their inode number; each gets an id of
			// its own in ids, as the tree gives them.
			ids := []*node{nil}
			newNode := func(k uint64) *node {
				n := &node{inode: inode{id: uint32(len(ids)), attr: gofs.StableAttr{Ino: k}}}
				ids = append(ids, n)
				return n
			}
			x := newNodeIndex(&ids, func(n *node) uint64 { return n.attr.Ino }, hash)
			want := map[uint64]*node{}
			const keys = 300
			for step := range 20000 {
				k := rng.Uint64N(keys)
				if rng.IntN(3) > 0 || step > 15000 && rng.IntN(2) == 0 {
					if step > 15000 { // drain: the table must shrink as well
						if n := want[k]; n != nil {
							if !x.remove(n) {
								t.Fatalf("step %d: remove of %d found nothing", step, k)
							}
							delete(want, k)
						}
						continue
					}
					n := newNode(k)
					if old := x.put(n); old != want[k] {
						t.Fatalf("step %d: put of %d replaced %p, want %p", step, k, old, want[k])
					}
					want[k] = n
				} else if n := want[k]; n != nil {
					stale := newNode(k)
					if x.remove(stale) {
						t.Fatalf("step %d: a node not in the index was removed", step)
					}
					if !x.remove(n) {
						t.Fatalf("step %d: remove of %d found nothing", step, k)
					}
					delete(want, k)
				}
				if x.len() != len(want) {
					t.Fatalf("step %d: %d nodes, want %d", step, x.len(), len(want))
				}
				for k := range uint64(keys) {
					if got := x.get(k); got != want[k] {
						t.Fatalf("step %d: key %d finds %p, want %p", step, k, got, want[k])
					}
				}
			}
			if len(x.slots) > 4*max(len(want), minIndexSlots) {
				t.Errorf("%d slots kept for %d nodes", len(x.slots), len(want))
			}
			seen := 0
			for n := range x.all() {
				if want[n.attr.Ino] != n {
					t.Errorf("all yields %d, not in the index", n.attr.Ino)
				}
				seen++
			}
			if seen != len(want) {
				t.Errorf("all yields %d nodes, want %d", seen, len(want))
			}
		})
	}
}
