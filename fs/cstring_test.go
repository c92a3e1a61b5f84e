package fs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLayerCallsOnNames stats and opens names short enough for the stack
// buffer, one byte either side of its end, and longer than it, alone and
// joined to a directory, and compares with x/sys/unix; a NUL in a name is
// refused with EINVAL as there.
func TestLayerCallsOnNames(t *testing.T) {
	dir := t.TempDir()
	l, err := openLayer(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	// Paths of 254, 255, 256 and 400 bytes, each made of components of
	// at most 200 bytes (NAME_MAX is 255).
	for _, size := range []int{1, len(cName{}) - 2, len(cName{}) - 1, len(cName{}), 400} {
		sub := strings.Repeat("d", min(size, 200))
		name := strings.Repeat("f", max(1, size-len(sub)-1))
		rel := name
		if size > 200 {
			rel = sub + "/" + name
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, rel), []byte(rel), 0o644); err != nil {
			t.Fatal(err)
		}
		var want, got unix.Stat_t
		if err := unix.Fstatat(l.fd, rel, &want, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
		if err := l.lstat(rel, &got); err != nil || got.Ino != want.Ino {
			t.Errorf("lstat of %d bytes: ino %d, %v; want %d", len(rel), got.Ino, err, want.Ino)
		}
		d, n := filepath.Dir(rel), filepath.Base(rel)
		if d == "." {
			d = ""
		}
		got = unix.Stat_t{}
		if err := l.lstatIn(d, n, &got); err != nil || got.Ino != want.Ino {
			t.Errorf("lstatIn(%d+%d bytes): ino %d, %v; want %d", len(d), len(n), got.Ino, err, want.Ino)
		}
		if err := l.lstatIn(d, n+"x", &got); err != unix.ENOENT {
			t.Errorf("lstatIn of a missing name of %d bytes: %v, want ENOENT", len(rel)+1, err)
		}
		fd, err := openat(l.fd, rel, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("openat of %d bytes: %v", len(rel), err)
		}
		buf := make([]byte, len(rel)+1)
		k, _ := unix.Read(fd, buf)
		unix.Close(fd)
		if string(buf[:k]) != rel {
			t.Errorf("openat of %d bytes read %q", len(rel), buf[:k])
		}
	}
	var st unix.Stat_t
	if err := l.lstat("a\x00b", &st); err != unix.EINVAL {
		t.Errorf("lstat of a name with NUL: %v, want EINVAL", err)
	}
	if err := l.lstatIn("a", "b\x00", &st); err != unix.EINVAL {
		t.Errorf("lstatIn of a name with NUL: %v, want EINVAL", err)
	}
	if _, err := openat(l.fd, "a\x00", unix.O_RDONLY, 0); err != unix.EINVAL {
		t.Errorf("openat of a name with NUL: %v, want EINVAL", err)
	}
}

// TestLayerProbesAllocateNothing holds the calls a lookup makes for every
// layer it probes to no garbage: a stat of a name that is there, and of
// one that is not, and a read of an attribute it does not have (through
// getxattrat, where the kernel has it; the /proc path costs a string).
func TestLayerProbesAllocateNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if !rawFstatat {
		t.Skip("fstatat goes through x/sys/unix on this architecture")
	}
	l, err := openLayer(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	var st unix.Stat_t
	var buf [8]byte
	allocs := testing.AllocsPerRun(100, func() {
		if err := l.lstatIn("sub", "file", &st); err != nil {
			t.Fatal(err)
		}
		if err := l.lstatIn("sub", "missing", &st); err != unix.ENOENT {
			t.Fatal(err)
		}
		if err := l.lstat("sub/file", &st); err != nil {
			t.Fatal(err)
		}
		if xattrAtUsable() {
			l.getxattr("sub/file", "trusted.overlay.metacopy", buf[:])
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per probe, want none", allocs)
	}
}
