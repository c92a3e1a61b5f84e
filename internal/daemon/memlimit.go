package daemon

import (
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"

	"github.com/unionfuse/unionfuse/fs"
)

// The Go runtime lets the heap grow by what the last collection kept
// (GOGC=100) before it collects again; a process serving unions lets it
// grow by half of that (gcPercent). For a process whose node trees are
// bounded (fs.Config.MaxNodes) that headroom is much of its resident
// size, so the process also gives the runtime a soft memory limit sized
// to the nodes of the unions it serves: the collector then runs when the
// process nears the limit, if that comes first. The nodes counted are those the kernel holds now (up to each
// union's bound) plus room for the next ones, once per process, so that
// a union server's limit follows what its unions hold rather than the
// sum of their bounds (100 unions: 4.9 GB, never reached). A soft limit below what the process really
// holds (a walk faster than the limit's last sizing, a huge directory's
// listing, thousands of open files) would make the collector run back to
// back, so the limit is sized again after every collection, and raised
// whenever the live heap comes within a quarter of it. After a
// collection, not on a clock: the nodes held and the live heap change
// only while the process allocates, which is what brings collections,
// and an idle daemon then wakes for nothing (a ticker four times a
// second woke each of them 23 times a second: 100 idle daemons used 7%
// of a CPU).

// Sizes of the limit, from the 63k-name walk (docs/benchmarks.md): the
// runtime, stacks and go-fuse's request buffers, then the bytes one node
// cost (≈450 then, ≈230 since fs has its own node tree, ≈170 since its
// tables hold node pointers, not maps, ≈155 since a clock replaced the
// pruner's list, ≈125 since node ids and lookup counts take 32 bits, alias
// groups left the node and the tables hold ids) with room for the
// garbage of the requests in between (600:
// 750 kept 8 MB more after the walk and 30-40 MB more in a union server
// of 100 unions, for no speed), and
// the nodes counted beyond those held (once per process, up to the sum of
// the bounds): what a fast walk adds between two collections.
const (
	limitBase      = 14 << 20
	limitPerNode   = 600
	limitNodeSlack = 8192
	// maxCountedBound is the largest bound counted for a union.
	maxCountedBound = 1 << 32
)

// MemoryLimiter keeps the runtime's soft memory limit sized to the nodes
// of the unions the process serves: one for the per-mount daemon, any
// number for the union server, whose limit follows its unions as they
// come and go. A union whose nodes are not bounded lifts the limit while
// it is served. GOMEMLIMIT set by the user wins: the limiter then does
// nothing.
type MemoryLimiter struct {
	mu        sync.Mutex
	unions    map[*counted]struct{} // the bounded unions served
	unbounded int                   // unions served whose nodes are not bounded
	raised    int64                 // the limit raised for what is held, above the sized one, 0 for none
	done      chan struct{}         // closed by Stop
}

// counted is one bounded union of a MemoryLimiter.
type counted struct {
	bound int
	// held returns the nodes the kernel holds now; nil counts the bound.
	held func() int
}

// nodes is what the union counts for: the nodes the kernel holds, at most
// its bound.
func (c *counted) nodes() int {
	if c.held == nil {
		return c.bound
	}
	return min(c.bound, c.held())
}

// gcPercent is the collector's GOGC for a process serving unions: the
// heap may grow by half what the last collection kept, not by all of it.
// A walk's requests leave about 450 bytes of garbage per name (900 before
// the path and listing buffers were reused), so collecting at half the
// live heap runs the collector as often as GOGC=100 did then; the peak of
// a 200k-name walk fell from 44 to 35 MB at the same speed
// (docs/benchmarks.md, "Less garbage per name").
const gcPercent = 50

// NewMemoryLimiter returns a limiter with no union yet (no limit), which
// sizes the limit again after every collection; nil when GOMEMLIMIT is set (a nil limiter does
// nothing). It sets the collector's GOGC to gcPercent unless GOGC is set.
func NewMemoryLimiter() *MemoryLimiter {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	m := &MemoryLimiter{unions: map[*counted]struct{}{}, done: make(chan struct{})}
	afterEachGC(m.done, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		select {
		case <-m.done:
		default:
			m.update()
		}
	})
	return m
}

// Add counts a union served with cfg, whose nodes held by the kernel held
// returns ((*fs.Mounted).HeldNodes; nil counts its whole bound), and
// returns the function that uncounts it.
func (m *MemoryLimiter) Add(cfg fs.Config, held func() int) (remove func()) {
	if m == nil {
		return func() {}
	}
	// A bound past any real tree (max_nodes=1e18) would overflow the sums.
	c := &counted{bound: min(cfg.NodeBound(), maxCountedBound), held: held}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.bound <= 0 {
		m.unbounded++
	} else {
		m.unions[c] = struct{}{}
	}
	m.update()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			if c.bound <= 0 {
				m.unbounded--
			} else {
				delete(m.unions, c)
			}
			m.update()
		})
	}
}

// update sets the runtime's limit again: sized to the unions now, or
// raised when the live heap has come within a quarter of the sized
// limit, or the live heap and the runtime's memory outside it (stacks,
// metadata: counted by the limit, freed by no collection) within an
// eighth, to twice the live heap plus that memory. A limit below what the
// process holds would have the collector run back to back; one raised
// sooner would give up memory the collector can keep (100 unions in one
// server: 417 MB against 361 MB with the trigger at a quarter for both).
// The caller holds mu.
func (m *MemoryLimiter) update() {
	m.raised = 0
	live, outside := heldMemory()
	if sized := m.limit(); sized != math.MaxInt64 && (live > sized*3/4 || live+outside > sized*7/8) {
		m.raised = 2*live + outside
	}
	debug.SetMemoryLimit(m.limit())
}

// heldMemory returns the heap the last collection kept and the memory the
// runtime holds outside the heap's objects (goroutine stacks, its own
// metadata), which the soft limit counts as well. A variable for the
// tests.
var heldMemory = func() (live, outside int64) {
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	metrics.Read(samples)
	v := func(i int) int64 { return int64(samples[i].Value.Uint64()) }
	return v(0), max(0, v(1)-v(2)-v(3)-v(4)-v(5))
}

// limit is the limit for the unions counted now. The caller holds mu.
func (m *MemoryLimiter) limit() int64 {
	if m.unbounded > 0 || len(m.unions) == 0 {
		return math.MaxInt64
	}
	nodes, bounds := limitNodeSlack, 0
	for c := range m.unions {
		nodes += c.nodes()
		bounds += c.bound
	}
	return max(limitBase+limitPerNode*int64(min(nodes, bounds)), m.raised)
}

// Limit returns the limit set now, math.MaxInt64 for none.
func (m *MemoryLimiter) Limit() int64 {
	if m == nil {
		return math.MaxInt64
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.limit()
}

// Stop stops sizing the limit after collections; once it has returned,
// only Add and its removals set the runtime's limit.
func (m *MemoryLimiter) Stop() {
	if m != nil {
		m.mu.Lock()
		defer m.mu.Unlock()
		close(m.done)
	}
}

// limitMemory sets the runtime's soft memory limit for serving the union
// mounted with cfg alone (the per-mount daemon) and returns a function
// that stops it.
func limitMemory(cfg fs.Config, mounted *fs.Mounted) (stop func()) {
	m := NewMemoryLimiter()
	remove := m.Add(cfg, mounted.HeldNodes)
	return func() {
		remove()
		m.Stop()
	}
}
