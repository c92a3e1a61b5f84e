package fs

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// go-fuse keeps up to GOMAXPROCS+1 goroutines blocked in read(2) on
// /dev/fuse (at least 3), each holding a P of the Go scheduler while it
// waits. With as many Ps as CPUs every P is soon held by a waiting
// reader, and while requests come back to back the runtime's sysmon
// takes a P back from a reader every 20 µs, wakes a thread to run it for
// nothing, and never backs off into its long sleep: a thread switch and a
// futex call per request beyond the request's own (docs/benchmarks.md,
// "Untar: the Go scheduler around /dev/fuse"). One P more than go-fuse's
// readers leaves one idle while they all wait, so a waiting reader keeps
// its P (the runtime retakes it only after 10 ms when another P is idle)
// and sysmon sleeps: untar of 2,000 files 773 -> 623 ms. Fewer gained
// nothing, more gained no more.
//
// Every P the process uses keeps caches of its own (memory spans, pooled
// request buffers): about 0.7 MB more for a walked daemon, a cost without
// a gain where the requests wait on the disk (a cold walk: the same time
// with either count). So the process runs with the runtime's own count
// and raises it only while its unions are being changed fast — a burst of
// changeBurst changes within burstWindow — and lowers it again when
// changes have stopped for idleAfter.
//
// go-fuse sizes its readers from GOMAXPROCS when a server is created, so
// servers are created at the runtime's count. A GOMAXPROCS set by the
// user is left alone.

var (
	// changeBurst changes within burstWindow raise GOMAXPROCS: 1,280 a
	// second (untar sends over 20,000; an editor's save, a few).
	changeBurst = int64(64)
	burstWindow = 50 * time.Millisecond
	// idleAfter without a change lowers GOMAXPROCS again (read under
	// procs.mu).
	idleAfter = 2 * time.Second
)

// procs is the process's governor of GOMAXPROCS.
var procs = newProcGovernor(runtime.GOMAXPROCS(0), os.Getenv("GOMAXPROCS") != "")

// procGovernor raises GOMAXPROCS to one P beyond go-fuse's readers while
// the unions served are changed fast, and creates servers at the base
// count.
type procGovernor struct {
	base   int  // GOMAXPROCS as the runtime chose it at start
	target int  // the raised count
	fixed  bool // the user set GOMAXPROCS, or base needs no more: never change it

	raised      atomic.Bool
	changes     atomic.Int64 // changes counted since windowStart
	windowStart atomic.Int64 // unix nanoseconds
	lastChange  atomic.Int64 // unix nanoseconds, while raised

	mu sync.Mutex // held while GOMAXPROCS changes or a server is created
}

// newProcGovernor returns the governor of a process whose runtime chose
// base Ps; fixed when the user set GOMAXPROCS. With 18 CPUs or more base
// already exceeds go-fuse's readers (at most 17): nothing to raise, so
// the count is left alone there too.
func newProcGovernor(base int, fixed bool) *procGovernor {
	target := fuseReaders(base) + 1
	g := &procGovernor{base: base, target: target, fixed: fixed || target <= base}
	g.windowStart.Store(time.Now().UnixNano())
	return g
}

// fuseReaders returns the most goroutines go-fuse keeps reading requests
// for a server created at GOMAXPROCS procs (fuse.NewServer: procs clamped
// to 2..16, plus one).
func fuseReaders(procs int) int {
	return min(max(procs, 2), 16) + 1
}

// changed counts one request that changes a union (cheap: two atomic
// operations and a clock read).
func (g *procGovernor) changed() {
	if g.fixed {
		return
	}
	now := time.Now().UnixNano()
	if g.raised.Load() {
		g.lastChange.Store(now)
		return
	}
	if g.changes.Add(1) != changeBurst {
		return // only the change that completes a burst judges its window
	}
	g.changes.Store(0)
	if start := g.windowStart.Swap(now); now-start <= int64(burstWindow) {
		g.raise(now)
	}
}

// raise sets GOMAXPROCS to the target and starts the watch that lowers it.
func (g *procGovernor) raise(now int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.raised.Load() {
		return
	}
	g.lastChange.Store(now)
	runtime.GOMAXPROCS(g.target)
	g.raised.Store(true)
	time.AfterFunc(idleAfter, g.lowerWhenIdle)
}

// lowerWhenIdle lowers GOMAXPROCS to the base once no change has come for
// idleAfter, and looks again later otherwise.
func (g *procGovernor) lowerWhenIdle() {
	g.mu.Lock()
	defer g.mu.Unlock()
	quiet := time.Duration(time.Now().UnixNano() - g.lastChange.Load())
	if quiet < idleAfter {
		time.AfterFunc(idleAfter-quiet, g.lowerWhenIdle)
		return
	}
	g.raised.Store(false)
	runtime.GOMAXPROCS(g.base)
	g.changes.Store(0)
	g.windowStart.Store(time.Now().UnixNano())
}

// newServer creates and mounts a go-fuse server (fuse.NewServer) with the
// readers of the base count, whatever the count is now.
func (g *procGovernor) newServer(fs fuse.RawFileSystem, mountPoint string, opts *fuse.MountOptions) (*fuse.Server, error) {
	if g.fixed {
		return fuse.NewServer(fs, mountPoint, opts)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.raised.Load() {
		runtime.GOMAXPROCS(g.base)
		defer runtime.GOMAXPROCS(g.target)
	}
	return fuse.NewServer(fs, mountPoint, opts)
}
