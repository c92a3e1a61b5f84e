package daemon

import (
	"math"
	"runtime/debug"
	"testing"

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
	removeA := m.Add(fs.Config{MaxNodes: 1000})
	check("one union", limitBase+limitPerNode*1000)
	removeB := m.Add(fs.Config{MaxNodes: 3000})
	check("two unions", limitBase+limitPerNode*4000)
	removeU := m.Add(fs.Config{MaxNodes: -1})
	check("an unbounded union", math.MaxInt64)
	removeU()
	removeA()
	removeA() // once only
	check("after two left", limitBase+limitPerNode*3000)
	removeB()
	check("after the last", math.MaxInt64)
}

// GOMEMLIMIT set by the user wins: no limiter.
func TestMemoryLimiterLeavesGOMEMLIMIT(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "1GiB")
	m := NewMemoryLimiter()
	m.Add(fs.Config{MaxNodes: 1000})()
	if m != nil || m.Limit() != math.MaxInt64 {
		t.Errorf("a limiter under GOMEMLIMIT: %v", m)
	}
}
