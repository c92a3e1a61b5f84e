package unionserver

import (
	"path/filepath"
	"testing"

	"github.com/unionfuse/unionfuse/internal/daemon"
)

func TestUnder(t *testing.T) {
	for _, tt := range []struct {
		p, root string
		want    bool
	}{
		{"/a/b", "/a", true},
		{"/a", "/a", false},
		{"/ab", "/a", false},
		{"/a/b", "/", true},
		{"/", "/", false},
	} {
		if got := under(tt.p, tt.root); got != tt.want {
			t.Errorf("under(%q, %q) = %v, want %v", tt.p, tt.root, got, tt.want)
		}
	}
}

// TestHidesRunDir: a mountpoint at or above the run directory (where the
// socket and lock are) is refused, any other is not.
func TestHidesRunDir(t *testing.T) {
	run := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", run)
	dir := daemon.PidDir()
	if resolved, err := filepath.EvalSymlinks(filepath.Dir(dir)); err == nil {
		dir = filepath.Join(resolved, filepath.Base(dir))
	}
	for _, m := range []string{dir, filepath.Dir(dir), "/"} {
		if err := hidesRunDir(m); err == nil {
			t.Errorf("hidesRunDir(%q) with the run directory %s: no error", m, dir)
		}
	}
	if err := hidesRunDir(filepath.Join(dir, "x")); err != nil {
		t.Errorf("a mountpoint below the run directory: %v", err)
	}
	if err := hidesRunDir(t.TempDir()); err != nil {
		t.Errorf("a mountpoint elsewhere: %v", err)
	}
}
