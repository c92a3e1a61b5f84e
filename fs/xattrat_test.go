package fs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLayerXattrsBothWays sets, reads, lists and removes attributes of a
// layer's files through the *xattrat calls and through /proc paths (the
// way taken on kernels before 6.13), and each way sees what the other
// wrote, at the layer's root as below it, and on a symlink itself.
func TestLayerXattrsBothWays(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "d", "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "d", "link")); err != nil {
		t.Fatal(err)
	}
	l, err := openLayer(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	if err := unix.Setxattr(filepath.Join(dir, "d", "f"), "user.probe", []byte("x"), 0); err == unix.ENOTSUP {
		t.Skip("no user xattrs on", dir)
	}
	defer xattrAtMissing.Store(false)

	for _, rel := range []string{"", "d/f"} {
		for _, writeProc := range []bool{false, true} {
			xattrAtMissing.Store(writeProc)
			if err := l.setxattr(rel, "user.both", []byte("value"), 0); err != nil {
				t.Fatalf("setxattr %q (proc %v): %v", rel, writeProc, err)
			}
			xattrAtMissing.Store(!writeProc)
			buf := make([]byte, 16)
			n, err := l.getxattr(rel, "user.both", buf)
			if err != nil || string(buf[:n]) != "value" {
				t.Fatalf("getxattr %q (proc %v) = %q, %v", rel, !writeProc, buf[:n], err)
			}
			names, err := l.listxattr(rel)
			if err != nil || !slices.Contains(names, "user.both") {
				t.Fatalf("listxattr %q (proc %v) = %v, %v", rel, !writeProc, names, err)
			}
			if err := l.removexattr(rel, "user.both"); err != nil {
				t.Fatalf("removexattr %q (proc %v): %v", rel, !writeProc, err)
			}
			if _, err := l.getxattr(rel, "user.both", buf); err != unix.ENODATA {
				t.Fatalf("getxattr %q after removal: %v, want ENODATA", rel, err)
			}
		}
	}
	// The final component is not followed: a symlink's own attributes
	// (user.* is refused on symlinks), not its target's.
	for _, proc := range []bool{false, true} {
		xattrAtMissing.Store(proc)
		if err := l.setxattr("d/link", "user.both", []byte("v"), 0); err != unix.EPERM {
			t.Errorf("setxattr on a symlink (proc %v): %v, want EPERM", proc, err)
		}
	}
}
