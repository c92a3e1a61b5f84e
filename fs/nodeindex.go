package fs

import "iter"

// nodeIndex finds nodes by a key each node carries (its identity, or its
// name in its directory): a hash table of node ids, open addressing with
// linear probing, where a node is found through the tree's id table and
// its key read from the node itself.
//
// It replaces Go maps for the tree's tables because a map stores a copy
// of every key beside its value, in groups filled to at most seven
// eighths, and never shrinks: on the 63k-name walk the identity map cost
// about 60 bytes a node (its key is 24 bytes) and the children maps, one
// per directory, about 35. A table here holds a 4-byte node id a slot
// (a pointer took 8 until session 22), doubles when three quarters full
// and halves when a quarter full: 5 to 16 bytes a node, and a walk past
// the node bound leaves no room behind. Deletion shifts the entries
// after the freed slot back (no tombstones).
//
// A node in an index has an id (tree.newID), which it keeps while it is
// there; its key must not change while it is in the index: take it out
// first. Guarded by the tree's lock.
type nodeIndex[K comparable] struct {
	slots []uint32 // node ids, 0 for none; nil, or a power of two long
	count int
	// nodes is the tree's id table, which the ids in slots index.
	nodes *[]*node
	key   func(*node) K
	hash  func(K) uint64
}

// minIndexSlots is the smallest table an index keeps once it has one.
const minIndexSlots = 16

// newNodeIndex returns an empty index of the nodes of the id table nodes
// by key, hashed by hash (which should be seeded, so that no one can
// choose keys that collide).
func newNodeIndex[K comparable](nodes *[]*node, key func(*node) K, hash func(K) uint64) *nodeIndex[K] {
	return &nodeIndex[K]{nodes: nodes, key: key, hash: hash}
}

// len returns the number of nodes in x.
func (x *nodeIndex[K]) len() int { return x.count }

// home returns the slot where the probe for k starts.
func (x *nodeIndex[K]) home(k K) int {
	return int(x.hash(k) & uint64(len(x.slots)-1))
}

// at returns the node of slot i, which must not be empty.
func (x *nodeIndex[K]) at(i int) *node { return (*x.nodes)[x.slots[i]] }

// get returns the node with key k, or nil.
func (x *nodeIndex[K]) get(k K) *node {
	if x.count == 0 {
		return nil
	}
	mask := len(x.slots) - 1
	for i := x.home(k); ; i = (i + 1) & mask {
		if x.slots[i] == 0 {
			return nil
		}
		if s := x.at(i); x.key(s) == k {
			return s
		}
	}
}

// put adds n, which has an id, under its key, in place of the node that
// had that key, which it returns (nil if none).
func (x *nodeIndex[K]) put(n *node) *node {
	if (x.count+1)*4 > len(x.slots)*3 {
		x.resize(max(minIndexSlots, 2*len(x.slots)))
	}
	k := x.key(n)
	mask := len(x.slots) - 1
	for i := x.home(k); ; i = (i + 1) & mask {
		if x.slots[i] == 0 {
			x.slots[i] = n.id
			x.count++
			return nil
		}
		if s := x.at(i); x.key(s) == k {
			x.slots[i] = n.id
			return s
		}
	}
}

// remove takes n out of x, if it is there under its key, and reports
// whether it was.
func (x *nodeIndex[K]) remove(n *node) bool {
	if x.count == 0 || n.id == 0 {
		return false
	}
	mask := len(x.slots) - 1
	i := x.home(x.key(n))
	for ; x.slots[i] != n.id; i = (i + 1) & mask {
		if x.slots[i] == 0 {
			return false
		}
	}
	// Move back each later node of the run whose probe starts at or
	// before the hole, so that every probe still reaches its node.
	for j := (i + 1) & mask; x.slots[j] != 0; j = (j + 1) & mask {
		h := x.home(x.key(x.at(j)))
		if !cyclicBetween(i, h, j) {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
	x.slots[i] = 0
	x.count--
	if len(x.slots) > minIndexSlots && x.count*4 < len(x.slots) {
		x.resize(len(x.slots) / 2)
	}
	return true
}

// cyclicBetween reports whether h lies in (i, j], going round the table.
func cyclicBetween(i, h, j int) bool {
	if i <= j {
		return i < h && h <= j
	}
	return i < h || h <= j
}

// resize moves the nodes to a table of size slots.
func (x *nodeIndex[K]) resize(size int) {
	old := x.slots
	x.slots = make([]uint32, size)
	mask := size - 1
	for _, id := range old {
		if id == 0 {
			continue
		}
		i := x.home(x.key((*x.nodes)[id]))
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = id
	}
}

// all yields every node in x, in no particular order.
func (x *nodeIndex[K]) all() iter.Seq[*node] {
	return func(yield func(*node) bool) {
		for i, id := range x.slots {
			if id != 0 && !yield(x.at(i)) {
				return
			}
		}
	}
}

// mix64 scrambles x so that every bit of the result depends on every bit
// of x (the finalizer of MurmurHash3).
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
