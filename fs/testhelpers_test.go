package fs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
)

// testOverlay opens an overlay (without mounting it) over layers given in
// testutil.Spec's notation: upper first, then lowers top first.
func testOverlay(t testing.TB, upper []string, lowers ...[]string) *overlay {
	t.Helper()
	base := t.TempDir()
	cfg := Config{Upper: filepath.Join(base, "upper"), Work: filepath.Join(base, "work")}
	for _, d := range []string{cfg.Upper, cfg.Work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	testutil.BuildDir(t, cfg.Upper, testutil.Spec(upper...))
	for i, spec := range lowers {
		d := filepath.Join(base, "lower"+string(rune('0'+i)))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		testutil.BuildDir(t, d, testutil.Spec(spec...))
		cfg.Lowers = append(cfg.Lowers, d)
	}
	ov, err := newOverlay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ov.close)
	return ov
}

// allLayers is the layer list of the root directory.
func allLayers(ov *overlay) []int {
	ls := make([]int, len(ov.layers))
	for i := range ls {
		ls[i] = i
	}
	return ls
}
