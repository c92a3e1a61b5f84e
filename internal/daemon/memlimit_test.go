package daemon

import (
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/fs"
)

// The limit follows the unions served: their node bounds summed, lifted
// while one has no bound, back to none when the last leaves; and the
// runtime's limit is the limiter's.
func TestMemoryLimiterFollowsTheUnions(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(math.MaxInt64)
	m := NewMemoryLimiter()
	defer m.Stop()
	check := func(what string, want int64) {
		t.Helper()
		if got := m.Limit(); got != want {
			t.Errorf("%s: limit %d, want %d", what, got, want)
		}
		if got := debug.SetMemoryLimit(-1); got != want {
			t.Errorf("%s: the runtime's limit %d, want %d", what, got, want)
		}
	}
	check("no union", math.MaxInt64)
	removeA := m.Add(fs.Config{MaxNodes: 1000}, nil)
	check("one union", limitBase+limitPerNode*1000)
	removeB := m.Add(fs.Config{MaxNodes: 3000}, nil)
	check("two unions", limitBase+limitPerNode*4000)
	removeU := m.Add(fs.Config{MaxNodes: -1}, nil)
	check("an unbounded union", math.MaxInt64)
	removeU()
	removeA()
	removeA() // once only
	check("after two left", limitBase+limitPerNode*3000)
	removeB()
	check("after the last", math.MaxInt64)
}

// A union counts the nodes the kernel holds, up to its bound; the slack
// is counted once, up to the sum of the bounds; the limit follows the
// count as it changes, collection by collection.
func TestMemoryLimiterCountsHeldNodes(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(math.MaxInt64)
	m := NewMemoryLimiter()
	defer m.Stop()
	var mu sync.Mutex
	held := 100
	heldNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return held
	}
	defer m.Add(fs.Config{MaxNodes: 65536}, heldNow)()
	if got, want := m.Limit(), int64(limitBase+limitPerNode*(100+limitNodeSlack)); got != want {
		t.Errorf("100 nodes held: limit %d, want %d", got, want)
	}
	removeSmall := m.Add(fs.Config{MaxNodes: 1000}, func() int { return 50 })
	if got, want := m.Limit(), int64(limitBase+limitPerNode*(150+limitNodeSlack)); got != want {
		t.Errorf("a second union holding 50 nodes: limit %d, want %d (the slack once)", got, want)
	}
	removeSmall()
	mu.Lock()
	held = 60000
	mu.Unlock()
	want := int64(limitBase + limitPerNode*65536)
	// The limit is sized again after a collection.
	deadline := time.Now().Add(5 * time.Second)
	for debug.SetMemoryLimit(-1) != want && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := debug.SetMemoryLimit(-1); got != want {
		t.Errorf("60000 nodes held, bound 65536: the runtime's limit %d, want the bound's %d", got, want)
	}
}

// GOMEMLIMIT set by the user wins: no limiter.
func TestMemoryLimiterLeavesGOMEMLIMIT(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "1GiB")
	m := NewMemoryLimiter()
	m.Add(fs.Config{MaxNodes: 1000}, nil)()
	if m != nil || m.Limit() != math.MaxInt64 {
		t.Errorf("a limiter under GOMEMLIMIT: %v", m)
	}
}

// A process serving unions collects at gcPercent, unless GOGC says
// otherwise.
func TestMemoryLimiterSetsGOGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, env := range []string{"", "200"} {
		t.Setenv("GOGC", env)
		debug.SetGCPercent(200)
		NewMemoryLimiter().Stop()
		want := gcPercent
		if env != "" {
			want = 200
		}
		if got := debug.SetGCPercent(200); got != want {
			t.Errorf("GOGC=%q: collecting at %d%%, want %d%%", env, got, want)
		}
	}
}

// What the process holds near the sized limit raises it: to twice the
// live heap plus the memory outside the heap (stacks, the runtime's own),
// which a collection cannot free; back to the sized limit once it falls.
func TestMemoryLimiterRaisesForWhatIsHeld(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(math.MaxInt64)
	defer func(f func() (int64, int64)) { heldMemory = f }(heldMemory)
	var live, outside atomic.Int64 // the limiter reads them after collections too
	heldMemory = func() (int64, int64) { return live.Load(), outside.Load() }
	m := NewMemoryLimiter()
	defer m.Stop()
	defer m.Add(fs.Config{MaxNodes: 1000}, nil)()
	sized := int64(limitBase + limitPerNode*1000)
	check := func(what string, l, o, want int64) {
		t.Helper()
		live.Store(l)
		outside.Store(o)
		m.mu.Lock()
		m.update()
		m.mu.Unlock()
		if got := debug.SetMemoryLimit(-1); got != want {
			t.Errorf("%s: limit %d, want %d", what, got, want)
		}
	}
	check("half the limit held", sized/4, sized/4, sized)
	check("a live heap of half the limit and 3/8 outside it", sized/2, sized*3/8+1, 2*(sized/2)+sized*3/8+1)
	check("the same heap alone", sized/2, 0, sized)
	check("a live heap of 3/4 and more", sized*3/4+1, 0, 2*(sized*3/4+1))
	check("nothing held", 0, 0, sized)
}

// afterEachGC runs its function after each collection, and not once done
// is closed; Stop leaves the runtime's limit alone from then on.
func TestAfterEachGC(t *testing.T) {
	var calls atomic.Int64
	done := make(chan struct{})
	afterEachGC(done, func() { calls.Add(1) })
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < 3 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if n := calls.Load(); n < 3 {
		t.Fatalf("%d calls after collections, want 3 or more", n)
	}
	close(done)
	runtime.GC()
	time.Sleep(10 * time.Millisecond) // the finalizer of the last armed sentinel
	before := calls.Load()
	for range 3 {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if n := calls.Load(); n != before {
		t.Errorf("%d calls after done was closed, want none", n-before)
	}
}

func TestMemoryLimiterStopsAfterStop(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(math.MaxInt64)
	m := NewMemoryLimiter()
	remove := m.Add(fs.Config{MaxNodes: 1000}, nil)
	defer remove()
	m.Stop()
	debug.SetMemoryLimit(math.MaxInt64)
	for range 3 {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("the runtime's limit %d after Stop and collections, want none", got)
	}
}
