package daemon

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/unionfuse/unionfuse/fs"
)

// The Go runtime lets the heap grow to twice what the last collection
// kept (GOGC=100) before it collects again. For a daemon whose node tree
// is bounded (fs.Config.MaxNodes) that headroom is most of its resident
// size, so the daemon gives the runtime a soft memory limit sized to the
// bound: the collector then runs when the process nears the limit rather
// than when the heap has doubled. A soft limit below what the daemon
// really holds (a huge directory's listing, thousands of open files)
// would make the collector run back to back, so a watchdog raises the
// limit whenever the live heap comes within a quarter of it.

// Sizes of the limit, from the 63k-name walk (docs/benchmarks.md): the
// runtime, stacks and go-fuse's request buffers, then the bytes one node
// costs (≈450) with room for the garbage of the requests in between.
const (
	limitBase    = 14 << 20
	limitPerNode = 750
)

// limitMemory sets the runtime's soft memory limit for serving cfg, unless
// GOMEMLIMIT is set or the nodes are not bounded, and returns a function
// that stops its watchdog.
func limitMemory(cfg fs.Config) (stop func()) {
	nodes := cfg.NodeBound()
	if os.Getenv("GOMEMLIMIT") != "" || nodes <= 0 {
		return func() {}
	}
	limit := int64(limitBase + limitPerNode*nodes)
	debug.SetMemoryLimit(limit)
	done := make(chan struct{})
	go func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			metrics.Read(sample)
			if live := int64(sample[0].Value.Uint64()); live > limit*3/4 {
				limit = live * 2
				debug.SetMemoryLimit(limit)
			}
		}
	}()
	return func() { close(done) }
}
