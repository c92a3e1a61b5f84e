package daemon

import (
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/unionfuse/unionfuse/fs"
)

// The Go runtime lets the heap grow to twice what the last collection
// kept (GOGC=100) before it collects again. For a process whose node
// trees are bounded (fs.Config.MaxNodes) that headroom is most of its
// resident size, so the process gives the runtime a soft memory limit
// sized to the bounds of the unions it serves: the collector then runs
// when the process nears the limit rather than when the heap has
// doubled. A soft limit below what the process really holds (a huge
// directory's listing, thousands of open files) would make the collector
// run back to back, so a watchdog raises the limit whenever the live
// heap comes within a quarter of it.

// Sizes of the limit, from the 63k-name walk (docs/benchmarks.md): the
// runtime, stacks and go-fuse's request buffers, then the bytes one node
// costs (≈450) with room for the garbage of the requests in between.
const (
	limitBase    = 14 << 20
	limitPerNode = 750
)

// MemoryLimiter keeps the runtime's soft memory limit sized to the node
// bounds of the unions the process serves: one for the per-mount daemon,
// any number for the union server, whose limit follows its unions as
// they come and go. A union whose nodes are not bounded lifts the limit
// while it is served. GOMEMLIMIT set by the user wins: the limiter then
// does nothing.
type MemoryLimiter struct {
	mu        sync.Mutex
	nodes     int   // the sum of the bounds of the unions served
	unbounded int   // unions served whose nodes are not bounded
	raised    int64 // the watchdog's limit, above the sized one, 0 for none
	done      chan struct{}
}

// NewMemoryLimiter returns a limiter with no union yet (no limit), its
// watchdog started; nil when GOMEMLIMIT is set (a nil limiter does
// nothing).
func NewMemoryLimiter() *MemoryLimiter {
	if os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	m := &MemoryLimiter{done: make(chan struct{})}
	go m.watch()
	return m
}

// Add counts a union served with cfg and returns the function that
// uncounts it.
func (m *MemoryLimiter) Add(cfg fs.Config) (remove func()) {
	if m == nil {
		return func() {}
	}
	nodes := cfg.NodeBound()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.change(nodes, +1)
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.change(nodes, -1)
		})
	}
}

// change adds (sign +1) or removes a union of nodes nodes and sets the
// limit again: sized to the unions now, raised at once should the live
// heap already come near it (a limit below the live heap would have the
// collector run back to back until the watchdog's next look). The caller
// holds mu.
func (m *MemoryLimiter) change(nodes, sign int) {
	if nodes <= 0 {
		m.unbounded += sign
	} else {
		m.nodes += sign * nodes
	}
	m.raised = 0
	m.raiseFor(liveHeap())
	debug.SetMemoryLimit(m.limit())
}

// raiseFor raises the limit to twice live when live has come within a
// quarter of it. The caller holds mu.
func (m *MemoryLimiter) raiseFor(live int64) {
	if limit := m.limit(); limit != math.MaxInt64 && live > limit*3/4 {
		m.raised = live * 2
	}
}

// liveHeap is the heap the last collection kept.
func liveHeap() int64 {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	return int64(sample[0].Value.Uint64())
}

// limit is the limit for the unions counted now. The caller holds mu.
func (m *MemoryLimiter) limit() int64 {
	if m.unbounded > 0 || m.nodes == 0 {
		return math.MaxInt64
	}
	return max(limitBase+limitPerNode*int64(m.nodes), m.raised)
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

// Stop stops the watchdog.
func (m *MemoryLimiter) Stop() {
	if m != nil {
		close(m.done)
	}
}

// watch raises the limit, every second, when the live heap has come
// within a quarter of it.
func (m *MemoryLimiter) watch() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-tick.C:
		}
		live := liveHeap()
		m.mu.Lock()
		before := m.limit()
		m.raiseFor(live)
		if m.limit() != before {
			debug.SetMemoryLimit(m.limit())
		}
		m.mu.Unlock()
	}
}

// limitMemory sets the runtime's soft memory limit for serving cfg alone
// (the per-mount daemon) and returns a function that stops its watchdog.
func limitMemory(cfg fs.Config) (stop func()) {
	m := NewMemoryLimiter()
	remove := m.Add(cfg)
	return func() {
		remove()
		m.Stop()
	}
}
