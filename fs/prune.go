package fs

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel keeps a dentry and an inode for every name it has looked up
// until memory pressure evicts them, and the tree keeps a node (with its
// name and table slots, ≈170 bytes) for as long as the kernel holds one:
// without a bound, a walk of a million names costs the daemon a sixth of
// a gigabyte it never gives back. So the
// overlay keeps the nodes the kernel holds in a list, most recently
// looked up first, and when there are more than Config.MaxNodes it asks
// the kernel to forget the oldest ones (FUSE_NOTIFY_PRUNE, Linux 6.16+).
// The kernel drops only dentries nobody uses — not an open file, a
// working directory or a directory with cached children — exactly as
// its own shrinker would under memory pressure, so nothing is lost that
// a lookup cannot find again: the next access looks the name up anew.
// What the kernel drops comes back as FORGET, after which the tree drops
// the node (OnForget takes it off the list).
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
// still cached) goes back to the front of the list and is tried again
// after MaxNodes more lookups. A batch is sent newest first, so children
// go before their directory, which the kernel can then drop too.

// defaultMaxNodes bounds the nodes kept for the kernel when
// Config.MaxNodes is 0: about 11 MB of node tree (≈170 B a name). It is
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

// pruner is the list of nodes the kernel holds, most recently looked up
// first, with its bound.
type pruner struct {
	mu sync.Mutex
	// head is the most recently looked-up node, tail the least; nodes
	// link through lruPrev and lruNext.
	head, tail *node
	count      int
	max        int
	// trigger is the length past which touch wakes the pruning: max, or
	// more after a batch the kernel could not drop (see prune).
	trigger int
	// kick wakes the goroutine that sends the notifications.
	kick chan struct{}
	// supported is cleared once the kernel refuses the notification
	// (older than Linux 6.16): the list is then no longer kept.
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

// held returns how many nodes the list holds: those the kernel has
// been given and not yet forgotten. It is the bound once the list is no
// longer kept (a kernel without the notification), and 0 without a
// bound (nil).
func (p *pruner) held() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.supported {
		return p.max
	}
	return p.count
}

// stop ends the goroutine of start.
func (p *pruner) stop() {
	if p != nil {
		close(p.done)
	}
}

// touch records that the kernel has just been given n: n moves to the
// front of the list, and when the list is over its bound the oldest
// nodes are pruned in the background.
func (p *pruner) touch(n *node) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if !p.supported {
		p.mu.Unlock()
		return
	}
	if p.head != n {
		if p.listed(n) {
			p.unlink(n)
		}
		p.pushFront(n)
	}
	p.busy = true
	wake := p.count > p.trigger || !p.armed
	p.armed = true
	p.mu.Unlock()
	if wake {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// remove takes n off the list: the kernel and the tree have let it go.
// A node a lookup has brought back since stays (touch and remove may
// come in either order then).
func (p *pruner) remove(n *node) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.listed(n) && n.Forgotten() {
		p.unlink(n)
	}
	p.mu.Unlock()
}

// listed reports whether n is on the list: a node on it has a neighbour
// or is its only member, the head (unlink clears both links). Must hold
// p.mu.
func (p *pruner) listed(n *node) bool {
	return n.lruPrev != nil || n.lruNext != nil || p.head == n
}

func (p *pruner) pushFront(n *node) {
	n.lruPrev, n.lruNext = nil, p.head
	if p.head != nil {
		p.head.lruPrev = n
	}
	p.head = n
	if p.tail == nil {
		p.tail = n
	}
	p.count++
}

func (p *pruner) unlink(n *node) {
	if n.lruPrev != nil {
		n.lruPrev.lruNext = n.lruNext
	} else {
		p.head = n.lruNext
	}
	if n.lruNext != nil {
		n.lruNext.lruPrev = n.lruPrev
	} else {
		p.tail = n.lruPrev
	}
	n.lruPrev, n.lruNext = nil, nil
	p.count--
}

// loop prunes whenever touch finds the list over its trigger, and trims
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
		p.mu.Lock()
		n := p.count
		p.mu.Unlock()
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

// prune asks the kernel to forget the oldest nodes until the list holds
// no more than target, one batch at a time. Between batches the FORGETs of
// the last one come back and shorten the list. When a batch leaves the
// list no shorter (what remains is in use), it stops and waits for
// pruneBatch more lookups before trying again, so a kernel that holds more
// than the bound in use costs one batch per pruneBatch lookups, not one
// per lookup.
func (p *pruner) prune(target int) {
	for {
		p.mu.Lock()
		before := p.count
		p.mu.Unlock()
		if !p.pruneOnce(target) {
			return
		}
		if !p.shortened(before) {
			p.mu.Lock()
			p.trigger = p.count + pruneBatch
			p.mu.Unlock()
			return
		}
	}
}

// forgetWait is how long prune waits for the FORGETs of a batch before it
// takes the batch as stuck: the kernel sends them on its own time, later
// on a busy machine (waiting a millisecond only made a pass stop early
// under load, and the list stay over its bound until pruneBatch more
// lookups came).
const forgetWait = 50 * time.Millisecond

// shortened reports whether the list became shorter than before within
// forgetWait (false as well when the pruner is stopped).
func (p *pruner) shortened(before int) bool {
	deadline := time.Now().Add(forgetWait)
	for {
		select {
		case <-p.done:
			return false
		case <-time.After(time.Millisecond):
		}
		p.mu.Lock()
		n := p.count
		p.mu.Unlock()
		if n < before {
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
	over := p.count - target
	if over <= 0 || !p.supported {
		p.trigger = p.max
		p.mu.Unlock()
		return false
	}
	batch := make([]*node, 0, min(max(over, pruneBatch), p.count, pruneBatch))
	for len(batch) < cap(batch) && p.tail != nil {
		n := p.tail
		p.unlink(n)
		if n.Forgotten() {
			continue // dropped without an OnForget we saw: off the list
		}
		// Tried again after max more lookups if the kernel keeps it.
		p.pushFront(n)
		batch = append(batch, n)
	}
	p.mu.Unlock()
	if len(batch) == 0 {
		return false
	}
	// Newest first: children before their directory.
	for i, j := 0, len(batch)-1; i < j; i, j = i+1, j-1 {
		batch[i], batch[j] = batch[j], batch[i]
	}
	if errno := p.tree.notifyPrune(batch); errno == unix.ENOSYS || errno == unix.EINVAL {
		// The kernel does not know the notification: stop keeping a list.
		p.mu.Lock()
		p.supported = false
		for p.tail != nil {
			p.unlink(p.tail)
		}
		p.mu.Unlock()
		return false
	}
	return true
}
