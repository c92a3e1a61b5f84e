package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// largeDirOverlay is an overlay whose directory "big" holds entries
// names spread over three lower layers, every tenth also shadowed in
// the bottom one: the bench's large directory (bench/layers.go).
func largeDirOverlay(tb testing.TB, entries int) *overlay {
	tb.Helper()
	ov := testOverlay(tb, nil, []string{"big/"}, []string{"big/"}, []string{"big/"})
	lowers := ov.cfg.Lowers
	for e := 0; e < entries; e++ {
		name := fmt.Sprintf("e%05d", e)
		paths := []string{filepath.Join(lowers[e%3], "big", name)}
		if e%10 == 0 && e%3 != 2 {
			paths = append(paths, filepath.Join(lowers[2], "big", name))
		}
		for _, p := range paths {
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return ov
}

// TestMergedLargeDir lists every name of a large directory merged from
// three layers once, shadowed copies included.
func TestMergedLargeDir(t *testing.T) {
	const entries = 3000
	ov := largeDirOverlay(t, entries)
	ents, errno := ov.mergedEntries(dirView{layers: allLayers(ov), rel: "big"})
	if errno != 0 {
		t.Fatal(errno)
	}
	if len(ents) != entries {
		t.Fatalf("%d entries, want %d", len(ents), entries)
	}
	seen := map[string]bool{}
	for _, e := range ents {
		if seen[e.Name] {
			t.Fatalf("%s listed twice", e.Name)
		}
		seen[e.Name] = true
		var want int
		fmt.Sscanf(e.Name, "e%05d", &want)
		// Positions count the upper layer (empty here) first.
		if int(e.from) != 1+want%3 {
			t.Fatalf("%s listed from layer %d, want %d", e.Name, e.from, 1+want%3)
		}
	}
}

// BenchmarkMergedLargeDir merges the listing of a directory of 20,000
// names in three layers (page cache warm): the daemon's part of the
// bench's readdir row, whose memory a fresh daemon faults in page by
// page.
func BenchmarkMergedLargeDir(b *testing.B) {
	ov := largeDirOverlay(b, 20000)
	v := dirView{layers: allLayers(ov), rel: "big"}
	b.ReportAllocs()
	for b.Loop() {
		if _, errno := ov.mergedEntries(v); errno != 0 {
			b.Fatal(errno)
		}
	}
}
