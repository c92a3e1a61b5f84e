package fs

import "sync/atomic"

// READDIRPLUS attributes of non-directories: sent or not.
//
// The kernel asks for READDIRPLUS on the first read of every directory.
// Each entry's attributes cost the daemon an fstatat, and, on a cold
// cache, a read of the inode from disk, which a walk that only lists
// names (find, ls) never needs: the kernel's overlay does not read them.
// An entry without a node id is "no attributes" to the kernel (not
// ENOENT), so non-directories can be listed bare; a program that stats
// them then sends a LOOKUP each. rdplusPolicy watches for that: when most
// bare entries are looked up soon after, it sends attributes again (and
// still lists one entry in 16 bare, to notice when the walk stops
// stat-ing). Directories always get theirs: a walk descends into them.
type rdplusPolicy struct {
	entries  atomic.Uint64 // non-directory entries listed
	bare     atomic.Int64  // of those, listed without attributes
	lookedUp atomic.Int64  // LOOKUPs since
}

// Thresholds of rdplusPolicy.
const (
	rdplusMinSample = 32   // bare entries before stat-ing is recognised
	rdplusProbe     = 16   // in stat mode, one entry in rdplusProbe is bare
	rdplusWindow    = 4096 // counts are halved beyond this many bare entries
)

// wantAttributes reports whether the next non-directory entry of a
// READDIRPLUS reply should carry attributes.
func (p *rdplusPolicy) wantAttributes() bool {
	n := p.entries.Add(1)
	bare, looked := p.bare.Load(), p.lookedUp.Load()
	if statingAt(bare, looked) && n%rdplusProbe != 0 {
		return true
	}
	if bare > rdplusWindow {
		// Forget the distant past (racy halving is fine for a heuristic).
		p.bare.Store(bare / 2)
		p.lookedUp.Store(looked / 2)
	}
	p.bare.Add(1)
	return false
}

// statingAt reports whether most of bare entries were looked up soon after
// (looked of them): the walk stats what it lists.
func statingAt(bare, looked int64) bool {
	return bare >= rdplusMinSample && 2*looked >= bare
}

// noteLookup counts a LOOKUP from the kernel.
func (p *rdplusPolicy) noteLookup() { p.lookedUp.Add(1) }
