package dirwalk

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// mkdeep makes depth nested directories named name below dir, one at a
// time, and a file f holding "bottom" and a link l at the bottom.
func mkdeep(t *testing.T, dir, name string, depth int) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < depth; i++ {
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		fd = next
	}
	defer unix.Close(fd)
	f, err := unix.Openat(fd, "f", unix.O_WRONLY|unix.O_CREAT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	unix.Write(f, []byte("bottom"))
	unix.Close(f)
	if err := unix.Symlinkat("f", fd, "l"); err != nil {
		t.Fatal(err)
	}
}

// TestWalkDeeperThanPathMax: 372 directories of 48 bytes (18 KB of path)
// walk, open and read as any other tree.
func TestWalkDeeperThanPathMax(t *testing.T) {
	dir := t.TempDir()
	name := strings.Repeat("d", 48)
	mkdeep(t, dir, name, 372)
	if err := os.WriteFile(filepath.Join(dir, "a"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var dirs int
	var got []string
	err := Walk(dir, func(e *Entry) error {
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
