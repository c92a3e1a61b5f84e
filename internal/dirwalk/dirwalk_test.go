package dirwalk

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestWalkDeeperThanPathMax: 372 directories of 48 bytes (18 KB of path)
// walk, open and read as any other tree.
func TestWalkDeeperThanPathMax(t *testing.T) {
	dir := t.TempDir()
	name := strings.Repeat("d", 48)
	fd := testutil.MkDeep(t, dir, name, 372, "bottom")
	err := unix.Symlinkat("f", fd, "l")
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var dirs int
	var got []string
	err = Walk(dir, func(e *Entry) error {
		switch {
		case e.IsDir():
			dirs++
		case e.Name == "f":
			f, err := e.Open()
			if err != nil {
				return err
			}
			defer f.Close()
			b, err := io.ReadAll(f)
			if err != nil {
				return err
			}
			got = append(got, e.Name+"="+string(b))
			if _, err := unix.Llistxattr(e.ProcPath(), nil); err != nil {
				t.Errorf("llistxattr %s: %v", e.ProcPath(), err)
			}
		case e.Name == "l":
			target, err := e.Readlink()
			if err != nil {
				return err
			}
			got = append(got, e.Name+"->"+target)
		default:
			got = append(got, e.Path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "a f=bottom l->f"; dirs != 372 || strings.Join(got, " ") != want {
		t.Errorf("walked %d directories and %q, want 372 and %q", dirs, got, want)
	}
}

// TestWalkOrderAndSkip: parents before children, names in order, SkipDir
// skips a directory's content.
func TestWalkOrderAndSkip(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"b/x", "a/skip/y", "a/z", "c"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), nil, 0o644)
	}
	var got []string
	err := Walk(dir, func(e *Entry) error {
		got = append(got, e.Path)
		if e.Name == "skip" {
			return SkipDir
		}
		return nil
	})
	if want := "a a/skip a/z b b/x c"; err != nil || strings.Join(got, " ") != want {
		t.Errorf("walk: %q, %v; want %q", got, err, want)
	}
	if err := Walk(filepath.Join(dir, "missing"), func(*Entry) error { return nil }); !os.IsNotExist(err) {
		t.Errorf("walk of a missing root: %v", err)
	}
}
