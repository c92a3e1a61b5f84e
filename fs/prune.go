package fs

import (
	"slices"
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The kernel keeps a dentry and an inode for every name it has looked up
// until memory pressure evicts them, and the tree keeps a node (with its
// name and table slots, ≈125 bytes) for as long as the kernel holds one:
// without a bound, a walk of a million names costs the daemon a sixth of
// a gigabyte it never gives back. So when the kernel holds more than
// Config.MaxNodes nodes, the overlay asks it to forget some
// (FUSE_NOTIFY_PRUNE, Linux 6.16+). The kernel drops only dentries
// nobody uses — not an open file, a working directory or a directory with
// cached children — exactly as its own shrinker would under memory
// pressure, so nothing is lost that a lookup cannot find again: the next
// access looks the name up anew. What the kernel drops comes back as
// FORGET, after which the tree drops the node.
//
// Which nodes: those not looked up for longest, as a clock finds them
// (the second-chance algorithm of page replacement). The nodes the kernel
// holds are the tree's node ids whose lookups are not all forgotten; a
// lookup sets the id's bit in tree.recent; a hand goes round the ids,
// clears the bits it finds set
// (those nodes are spared for one more round) and takes the ids whose bit
// is clear. A node costs one bit, not a place in a list: two pointers on
// every node (16 of its 112 bytes, a megabyte on the bench's walk) bought
// an exact order that the kernel's refusals blur anyway.
//
// A mount that has served no lookup for a while (Config.IdleTrimAfter) is trimmed further: the
// kernel is asked to forget every node it is not using (an idle mount
// keeps only what is open or someone's working directory), and then
// Config.OnIdle runs — the daemon returns the freed memory to the system
// there. Hundreds of mounts that were walked once and then left alone
// (CI runners, podman's mount_program) so cost little more than idle
// daemons; the next access looks its names up again.
//
// A node the kernel kept (in use, or a directory whose children were
// still cached) has its bit set again when it is sent, so it is tried
// again one round later. A batch is sent highest id first: ids are given
// out in lookup order, so children mostly go before their directory,
// which the kernel can then drop too.

// defaultMaxNodes bounds the nodes kept for the kernel when
// Config.MaxNodes is 0: about 8 MB of node tree (≈125 B a name). It is
// above the bench's 63k-name tree on purpose: a tree larger than the
// bound is looked up again on every walk, and a warm find then costs 4.8x
// the kernel's instead of 1.4x (docs/benchmarks.md, "Bounded node tree").
// Memory-tight hosts set -o max_nodes=8192 (≈10 MB a daemon after a walk
// of 63k names, against ≈20 MB with the default).
const defaultMaxNodes = 65536

// NodeBound returns how many nodes a mount of c keeps for the kernel at
// most (Config.MaxNodes, or its default), or 0 when there is no bound.
func (c Config) NodeBound() int {
	switch {
	case c.MaxNodes < 0:
		return 0
	case c.MaxNodes == 0:
		return defaultMaxNodes
	}
	return c.MaxNodes
}

// pruneBatch is how many nodes one notification asks the kernel to forget.
const pruneBatch = 1024

// defaultIdleAfter is how long a mount serves no lookup before it is
// trimmed (Config.IdleTrimAfter 0): long enough that a shell's or a
// build's pauses keep their warm names.
const defaultIdleAfter = 30 * time.Second

// pruner bounds the nodes the kernel holds of one union.
type pruner struct {
	mu  sync.Mutex
	max int
	// trigger is the count past which touch wakes the pruning: max, or
	// more after a batch the kernel could not drop (see prune).
	trigger int
	// kick wakes the goroutine that sends the notifications.
	kick chan struct{}
	// supported is cleared once the kernel refuses the notification
	// (older than Linux 6.16): nothing is sent any more.
	supported bool
	tree      *tree
	done      chan struct{}
	// busy says a lookup came since the idle timer last looked; armed
	// that the idle timer runs (from the first lookup after a trim).
	busy, armed bool
	// onIdle runs after an idle trim (Config.OnIdle), when set.
	onIdle func()
	// idleAfter is how long the mount serves no lookup before the trim.
	idleAfter time.Duration
}

// newPruner returns a pruner keeping at most max nodes, or nil for no
// bound (max 0).
func newPruner(max int, idleAfter time.Duration) *pruner {
	if max <= 0 {
		return nil
	}
	if idleAfter <= 0 {
		idleAfter = defaultIdleAfter
	}
	return &pruner{max: max, trigger: max, kick: make(chan struct{}, 1), supported: true, done: make(chan struct{}), idleAfter: idleAfter}
}

// start begins sending notifications for the union of tree t; onIdle
// (when not nil) runs after each idle trim.
func (p *pruner) start(t *tree, onIdle func()) {
	if p == nil {
		return
	}
	p.tree, p.onIdle = t, onIdle
	go p.loop()
}

// held returns how many nodes the kernel holds: those it has been given
// and not yet forgotten. It is the bound once the kernel has refused the
// notification, and 0 without a bound (nil).
func (p *pruner) held() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	supported := p.supported
	p.mu.Unlock()
	if !supported {
		return p.max
	}
	return int(p.tree.held.Load())
}

// stop ends the goroutine of start.
func (p *pruner) stop() {
	if p != nil {
		close(p.done)
	}
}

// touch records that the kernel has just been given a node (the tree has
// marked it recent): when the kernel holds more than the bound, the
// pruning runs in the background.
func (p *pruner) touch() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if !p.supported {
		p.mu.Unlock()
		return
	}
	p.busy = true
	wake := int(p.tree.held.Load()) > p.trigger || !p.armed
	p.armed = true
	p.mu.Unlock()
	if wake {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// loop prunes whenever touch finds the kernel holding more than the
// trigger, and trims
// the mount once it has been idle for p.idleAfter.
func (p *pruner) loop() {
	idle := time.NewTimer(p.idleAfter)
	idle.Stop()
	for {
		select {
		case <-p.done:
			idle.Stop()
			return
		case <-p.kick:
			p.prune(p.max)
			idle.Reset(p.idleAfter)
		case <-idle.C:
			p.mu.Lock()
			busy := p.busy
			p.busy = false
			p.armed = busy
			p.mu.Unlock()
			if busy {
				idle.Reset(p.idleAfter)
				continue
			}
			p.prune(0)
			p.settle()
			if p.onIdle != nil {
				p.onIdle()
			}
		}
	}
}

// settle waits (up to a second) until the FORGETs of what was pruned stop
// coming, so that what they free is free when onIdle runs.
func (p *pruner) settle() {
	last := -1
	for try := 0; try < 50; try++ {
		n := p.held()
		if n == last {
			return
		}
		last = n
		select {
		case <-p.done:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// prune asks the kernel to forget the oldest nodes until it holds no
// more than target, one batch at a time. Between batches the FORGETs of
// the last one come back. When a batch leaves the kernel holding no
// fewer (what remains is in use), it stops and waits for
// pruneBatch more lookups before trying again, so a kernel that holds more
// than the bound in use costs one batch per pruneBatch lookups, not one
// per lookup.
func (p *pruner) prune(target int) {
	for {
		before := p.held()
		if !p.pruneOnce(target) {
			return
		}
		if !p.shortened(before) {
			p.mu.Lock()
			p.trigger = int(p.tree.held.Load()) + pruneBatch
			p.mu.Unlock()
			return
		}
	}
}

// forgetWait is how long prune waits for the FORGETs of a batch before it
// takes the batch as stuck: the kernel sends them on its own time, later
// on a busy machine (waiting a millisecond only made a pass stop early
// under load, and the kernel hold more than the bound until pruneBatch more
// lookups came).
const forgetWait = 50 * time.Millisecond

// shortened reports whether the kernel came to hold fewer nodes than
// before within forgetWait (false as well when the pruner is stopped).
func (p *pruner) shortened(before int) bool {
	deadline := time.Now().Add(forgetWait)
	for {
		select {
		case <-p.done:
			return false
		case <-time.After(time.Millisecond):
		}
		if p.held() < before {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// pruneOnce asks the kernel to forget the oldest nodes over target, at
// least pruneBatch of them (one notification per batch of names, not one
// per name), and reports whether it sent anything.
func (p *pruner) pruneOnce(target int) bool {
	p.mu.Lock()
	held := int(p.tree.held.Load())
	over := held - target
	if over <= 0 || !p.supported {
		p.trigger = p.max
		p.mu.Unlock()
		return false
	}
	p.mu.Unlock()
	ids := p.tree.oldest(min(held, pruneBatch))
	if len(ids) == 0 {
		return false
	}
	// Highest id first: children before their directory.
	slices.Sort(ids)
	slices.Reverse(ids)
	if errno := p.tree.notifyPrune(ids); errno == unix.ENOSYS || errno == unix.EINVAL {
		// The kernel does not know the notification.
		p.mu.Lock()
		p.supported = false
		p.mu.Unlock()
		return false
	}
	return true
}

// oldest moves the pruner's hand round the node ids and returns up to
// max of those the kernel holds that were not looked up since the hand
// last passed them; it clears the bits of those that were (spared this
// round), and sets the bits of those it returns, which the kernel may
// keep. One call looks at each id at most twice. Must not hold t.mu.
func (t *tree) oldest(max int) []uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ids []uint64
	// Ids from first to the end of t.ids, the root's and the unused 0
	// aside; two rounds at most, so an id taken (its bit set) is passed
	// over (its bit cleared) but not taken again.
	const first = fuse.FUSE_ROOT_ID + 1
	n := uint64(len(t.ids))
	if n <= first {
		return nil
	}
	for steps := 2 * (n - first); steps > 0 && len(ids) < max; steps-- {
		if t.hand < first || t.hand >= n {
			t.hand = first
		}
		id := t.hand
		t.hand++
		if n := t.ids[id]; n == nil || n.lookups == 0 {
			continue // not held: free, or kept for its children
		}
		if t.isRecent(id) {
			t.recent[id/64] &^= 1 << (id % 64)
			continue
		}
		t.markRecent(id)
		ids = append(ids, id)
	}
	return ids
}

// markRecent sets the bit of node id in t.recent. Must hold t.mu.
func (t *tree) markRecent(id uint64) {
	w := int(id / 64)
	if w >= len(t.recent) {
		t.recent = slices.Grow(t.recent, w+1-len(t.recent))[:w+1]
	}
	t.recent[w] |= 1 << (id % 64)
}

// isRecent reports whether the bit of node id is set in t.recent. Must
// hold t.mu.
func (t *tree) isRecent(id uint64) bool {
	w := int(id / 64)
	return w < len(t.recent) && t.recent[w]&(1<<(id%64)) != 0
}
