package fs

import "iter"

// nodeIndex finds nodes by a key each node carries (its identity, or its
// name in its directory): a hash table of node pointers, open addressing
// with linear probing, where a node's key is read from the node itself.
//
// It replaces Go maps for the tree's tables because a map stores a copy
// of every key beside its value, in groups filled to at most seven
// eighths, and never shrinks: on the 63k-name walk the identity map cost
// about 60 bytes a node (its key is 24 bytes) and the children maps, one
// per directory, about 35. A table here holds one pointer a slot,
// doubles when three quarters full and halves when a quarter full: 11 to
// 32 bytes a node, and a walk past the node bound leaves no room behind.
// Deletion shifts the entries after the freed slot back (no tombstones).
//
// A node's key must not change while the node is in the index: take it
// out first. Guarded by the tree's lock.
type nodeIndex[K comparable] struct {
	slots []*node // nil, or a power of two long
	count int
	key   func(*node) K
	hash  func(K) uint64
}

// minIndexSlots is the smallest table an index keeps once it has one.
const minIndexSlots = 16

// newNodeIndex returns an empty index of nodes by key, hashed by hash
// (which should be seeded, so that no one can choose keys that collide).
func newNodeIndex[K comparable](key func(*node) K, hash func(K) uint64) *nodeIndex[K] {
	return &nodeIndex[K]{key: key, hash: hash}
}

// len returns the number of nodes in x.
func (x *nodeIndex[K]) len() int { return x.count }

// home returns the slot where the probe for k starts.
func (x *nodeIndex[K]) home(k K) int {
	return int(x.hash(k) & uint64(len(x.slots)-1))
}

// get returns the node with key k, or nil.
func (x *nodeIndex[K]) get(k K) *node {
	if x.count == 0 {
		return nil
	}
	mask := len(x.slots) - 1
	for i := x.home(k); ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == nil || x.key(s) == k {
			return s
		}
	}
}

// put adds n under its key, in place of the node that had that key, which
// it returns (nil if none).
func (x *nodeIndex[K]) put(n *node) *node {
	if (x.count+1)*4 > len(x.slots)*3 {
		x.resize(max(minIndexSlots, 2*len(x.slots)))
	}
	k := x.key(n)
	mask := len(x.slots) - 1
	for i := x.home(k); ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == nil {
			x.slots[i] = n
			x.count++
			return nil
		}
		if x.key(s) == k {
			x.slots[i] = n
			return s
		}
	}
}

// remove takes n out of x, if it is there under its key, and reports
// whether it was.
func (x *nodeIndex[K]) remove(n *node) bool {
	if x.count == 0 {
		return false
	}
	mask := len(x.slots) - 1
	i := x.home(x.key(n))
	for ; x.slots[i] != n; i = (i + 1) & mask {
		if x.slots[i] == nil {
			return false
		}
	}
	// Move back each later node of the run whose probe starts at or
	// before the hole, so that every probe still reaches its node.
	for j := (i + 1) & mask; x.slots[j] != nil; j = (j + 1) & mask {
		h := x.home(x.key(x.slots[j]))
		if !cyclicBetween(i, h, j) {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
	x.slots[i] = nil
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
	x.slots = make([]*node, size)
	mask := size - 1
	for _, s := range old {
		if s == nil {
			continue
		}
		i := x.home(x.key(s))
		for x.slots[i] != nil {
			i = (i + 1) & mask
		}
		x.slots[i] = s
	}
}

// all yields every node in x, in no particular order.
func (x *nodeIndex[K]) all() iter.Seq[*node] {
	return func(yield func(*node) bool) {
		for _, s := range x.slots {
			if s != nil && !yield(s) {
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
