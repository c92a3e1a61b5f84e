package mountinfo

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRootAndProc(t *testing.T) {
	if ok, err := IsMountPoint("/"); err != nil || !ok {
		t.Fatalf("IsMountPoint(/) = %v, %v; want true", ok, err)
	}
	if ok, err := IsMountPoint("/proc"); err != nil || !ok {
		t.Errorf("IsMountPoint(/proc) = %v, %v; want true", ok, err)
	}
	if ok, err := IsMountPoint("/proc/self"); err != nil || ok {
		t.Errorf("IsMountPoint(/proc/self) = %v, %v; want false", ok, err)
	}
	below, err := Below("/")
	if err != nil || !slices.Contains(below, "/proc") || slices.Contains(below, "/") {
		t.Errorf("Below(/) = %q, %v; want /proc and not /", below, err)
	}
	m, err := Containing("/proc/self/status")
	if err != nil || m == nil || m.Mountpoint != "/proc" || m.FSType != "proc" {
		t.Errorf("Containing(/proc/self/status) = %+v, %v; want the proc mount", m, err)
	}
}

// TestEscapedMountPoint mounts a tmpfs on a directory whose name the
// kernel escapes in the table, and one below it.
func TestEscapedMountPoint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(dir, "a b\tc\\d")
	inner := filepath.Join(top, "in ner")
	for _, p := range []string{top, inner} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", p, "tmpfs", 0, ""); err != nil {
			t.Skipf("mount tmpfs: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(p, unix.MNT_DETACH) })
		os.MkdirAll(inner, 0o755) // again, on the new tmpfs
	}
	if ok, err := IsMountPoint(top); err != nil || !ok {
		t.Errorf("IsMountPoint(%q) = %v, %v; want true", top, ok, err)
	}
	if m, err := Lookup(inner); err != nil || m == nil || m.FSType != "tmpfs" {
		t.Errorf("Lookup(%q) = %+v, %v; want the tmpfs", inner, m, err)
	}
	if got, err := Below(dir); err != nil || !slices.Equal(got, []string{top, inner}) {
		t.Errorf("Below(%q) = %q, %v; want %q", dir, got, err, []string{top, inner})
	}
	if m, err := Containing(filepath.Join(inner, "x")); err != nil || m == nil || m.Mountpoint != inner {
		t.Errorf("Containing(inner/x) = %+v, %v; want %q", m, err, inner)
	}
}
