package fs

import (
	"runtime"
	"testing"
)

// TestMountSizesProcsToReaders mounts two unions in one process, as the
// union server does, and checks that the process keeps one P beyond
// go-fuse's readers, sized from the runtime's own count both times (not
// from the count the first mount raised).
func TestMountSizesProcsToReaders(t *testing.T) {
	if userProcs {
		t.Skip("GOMAXPROCS is set: the mount leaves it alone")
	}
	want := fuseReaders(baseProcs) + extraProcs
	for i := range 2 {
		mountForTest(t, Config{}, func(string) {})
		if got := runtime.GOMAXPROCS(0); got != want {
			t.Fatalf("after mount %d: GOMAXPROCS %d, want %d (runtime's %d, go-fuse readers %d)", i+1, got, want, baseProcs, fuseReaders(baseProcs))
		}
	}
}

// TestFuseReaders follows go-fuse's sizing of its readers (NewServer).
func TestFuseReaders(t *testing.T) {
	for procs, want := range map[int]int{1: 3, 2: 3, 4: 5, 16: 17, 64: 17} {
		if got := fuseReaders(procs); got != want {
			t.Errorf("fuseReaders(%d) = %d, want %d", procs, got, want)
		}
	}
}
