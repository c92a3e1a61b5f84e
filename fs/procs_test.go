package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestProcsFollowChanges mounts two unions in one process, as the union
// server does, and checks GOMAXPROCS: the runtime's count after a walk,
// one P beyond go-fuse's readers while files are created fast, the
// runtime's count again once the changes stop, and a second union
// mounted while it is raised does not raise it further.
func TestProcsFollowChanges(t *testing.T) {
	if procs.fixed {
		t.Skip("GOMAXPROCS is set: the governor leaves it alone")
	}
	setIdleAfter := func(d time.Duration) (old time.Duration) {
		procs.mu.Lock()
		defer procs.mu.Unlock()
		old, idleAfter = idleAfter, d
		return old
	}
	defer setIdleAfter(setIdleAfter(300 * time.Millisecond))
	base, target := procs.base, fuseReaders(procs.base)+1
	waitProcs := func(want int, what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for runtime.GOMAXPROCS(0) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: GOMAXPROCS %d, want %d (runtime's %d, go-fuse readers %d)", what, runtime.GOMAXPROCS(0), want, base, fuseReaders(base))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitProcs(base, "before")

	merged, _, _ := mountForTest(t, Config{}, func(lower string) {
		for i := range 500 {
			if err := os.WriteFile(filepath.Join(lower, fmt.Sprint("f", i)), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
	if err := filepath.Walk(merged, func(string, os.FileInfo, error) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if got := runtime.GOMAXPROCS(0); got != base {
		t.Fatalf("after a walk of 500 names: GOMAXPROCS %d, want the runtime's %d", got, base)
	}

	dir := filepath.Join(merged, "new")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint("n", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := runtime.GOMAXPROCS(0); got != target {
		t.Fatalf("after creating 300 files: GOMAXPROCS %d, want %d", got, target)
	}
	mountForTest(t, Config{}, func(string) {})
	if got := runtime.GOMAXPROCS(0); got != target {
		t.Fatalf("after a second mount while raised: GOMAXPROCS %d, want %d", got, target)
	}
	waitProcs(base, "after the changes stopped")
}

// TestFuseReaders follows go-fuse's sizing of its readers (NewServer).
func TestFuseReaders(t *testing.T) {
	for procs, want := range map[int]int{1: 3, 2: 3, 4: 5, 16: 17, 64: 17} {
		if got := fuseReaders(procs); got != want {
			t.Errorf("fuseReaders(%d) = %d, want %d", procs, got, want)
		}
	}
}

// TestGovernorNeverLowers checks that a machine with more CPUs than
// go-fuse has readers keeps its count: the raised count would be lower.
func TestGovernorNeverLowers(t *testing.T) {
	for base, fixed := range map[int]bool{1: false, 2: false, 17: false, 18: true, 64: true} {
		g := newProcGovernor(base, false)
		if g.fixed != fixed || !g.fixed && g.target <= base {
			t.Errorf("base %d: fixed %v, target %d", base, g.fixed, g.target)
		}
	}
}
