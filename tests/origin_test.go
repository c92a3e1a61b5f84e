package tests

// Inode numbers across copy-up, unmount and mount, and between unionfuse
// and the kernel: both record overlay.origin on copy-up and report the
// lower original's number for the copy.

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// originLayers makes a lower holding f, d/g, a symlink s and a file with
// two names (h1, h2) in a fresh layout.
func originLayers(t *testing.T) layout {
	l := newLayout(t, testDir(t), 1)
	low := l.Lowers[0]
	os.WriteFile(filepath.Join(low, "f"), []byte("f\n"), 0o644)
	os.Mkdir(filepath.Join(low, "d"), 0o755)
	os.WriteFile(filepath.Join(low, "d", "g"), []byte("g\n"), 0o644)
	os.Symlink("f", filepath.Join(low, "s"))
	if err := unix.Mkfifo(filepath.Join(low, "p"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(low, "h1"), []byte("h\n"), 0o644)
	if err := os.Link(filepath.Join(low, "h1"), filepath.Join(low, "h2")); err != nil {
		t.Fatal(err)
	}
	return l
}

// copyUpAll changes f, d/g, s and h1 through the merged view, which copies
// them (and d) up.
func copyUpAll(t *testing.T, merged string) {
	for _, p := range []string{"f", "d/g", "h1"} {
		f, err := os.OpenFile(filepath.Join(merged, p), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("more\n")
		f.Close()
	}
	if err := os.Lchown(filepath.Join(merged, "s"), 1, 1); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(merged, "p"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// inos returns st_ino of paths below dir.
func inos(t *testing.T, dir string, paths ...string) map[string]uint64 {
	out := map[string]uint64{}
	for _, p := range paths {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, p), &st); err != nil {
			t.Fatal(err)
		}
		out[p] = st.Ino
	}
	return out
}

// checkDino checks that readdir's d_ino equals st_ino for every entry of
// dir.
func checkDino(t *testing.T, who, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	dinos := readDinos(t, dir)
	for _, e := range ents {
		var st unix.Stat_t
		unix.Lstat(filepath.Join(dir, e.Name()), &st)
		if dinos[e.Name()] != st.Ino {
			t.Errorf("%s: %s: d_ino %d, st_ino %d", who, filepath.Join(dir, e.Name()), dinos[e.Name()], st.Ino)
		}
	}
}

// readDinos lists dir with getdents64 and returns d_ino by name.
func readDinos(t *testing.T, dir string) map[string]uint64 {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	out := map[string]uint64{}
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return out
		}
		for b := buf[:n]; len(b) > 0; {
			reclen := int(b[16]) | int(b[17])<<8
			ino := uint64(0)
			for i := 7; i >= 0; i-- {
				ino = ino<<8 | uint64(b[i])
			}
			name := string(bytes.TrimRight(b[19:reclen], "\x00"))
			out[name] = ino
			b = b[reclen:]
		}
	}
}

// TestInodeNumbersPersist: a copied-up file, directory or symlink keeps
// its lower original's st_ino after unmount and mount, with unionfuse and
// with the kernel reading unionfuse's upper, and unionfuse reading the
// kernel's; a hard-linked file's copy is a new file (no index=on), as in
// the kernel.
func TestInodeNumbersPersist(t *testing.T) {
	testutil.RequireMounts(t)
	paths := []string{"f", "d", "d/g", "s", "p"}
	for _, first := range []mounter{subject(t), kernelOverlay{}} {
		t.Run("copied up by "+first.name(), func(t *testing.T) {
			l := originLayers(t)
			lower := inos(t, l.Lowers[0], append(paths, "h1")...)
			u := mountUnion(t, first, l)
			copyUpAll(t, l.Merged)
			during := inos(t, l.Merged, append(paths, "h1")...)
			u.mustUnmount()
			for _, p := range paths {
				if during[p] != lower[p] {
					t.Errorf("%s, while mounted: %s has st_ino %d, its lower original %d", first.name(), p, during[p], lower[p])
				}
			}
			if during["h1"] == lower["h1"] {
				t.Errorf("%s: the copy of hard-linked h1 kept the lower number %d", first.name(), lower["h1"])
			}
			var st unix.Stat_t
			if unix.Lstat(filepath.Join(l.Upper, "f"), &st) == nil && st.Ino == lower["f"] {
				t.Fatalf("upper/f is the lower inode")
			}
			for _, again := range []mounter{subject(t), kernelOverlay{}} {
				u := mountUnion(t, again, l)
				got := inos(t, l.Merged, append(paths, "h1")...)
				checkDino(t, again.name(), l.Merged)
				checkDino(t, again.name(), filepath.Join(l.Merged, "d"))
				u.mustUnmount()
				for _, p := range paths {
					if got[p] != lower[p] {
						t.Errorf("copied up by %s, mounted again by %s: %s has st_ino %d, want its origin's %d", first.name(), again.name(), p, got[p], lower[p])
					}
				}
			}
		})
	}
}

// TestOriginFormat: unionfuse writes overlay.origin and overlay.impure
// byte for byte as the kernel does for the same lower object.
func TestOriginFormat(t *testing.T) {
	testutil.RequireMounts(t)
	l := originLayers(t)
	u := mountUnion(t, subject(t), l)
	copyUpAll(t, l.Merged)
	u.mustUnmount()
	ours := map[string][]byte{}
	for _, p := range []string{"f", "d", "d/g", "s", "p"} {
		v, err := getXattrBytes(filepath.Join(l.Upper, p), "trusted.overlay.origin")
		if err != nil {
			t.Fatalf("upper/%s: no trusted.overlay.origin: %v", p, err)
		}
		ours[p] = v
	}
	if _, err := getXattrBytes(filepath.Join(l.Upper, "h1"), "trusted.overlay.origin"); err == nil {
		t.Errorf("upper/h1 (hard-linked below) has an origin; the kernel writes none without index=on")
	}
	for _, d := range []string{"", "d"} {
		if v, err := getXattrBytes(filepath.Join(l.Upper, d), "trusted.overlay.impure"); err != nil || string(v) != "y" {
			t.Errorf("upper/%s: trusted.overlay.impure = %q, %v; want y", d, v, err)
		}
	}
	// The kernel copies up the same lower objects in a second union on
	// the same lower directory: same handles, so the same values.
	k := newLayout(t, testDir(t), 0)
	k.Lowers = l.Lowers
	ku := mountUnion(t, kernelOverlay{}, k)
	copyUpAll(t, k.Merged)
	ku.mustUnmount()
	var names []string
	for p := range ours {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		theirs, err := getXattrBytes(filepath.Join(k.Upper, p), "trusted.overlay.origin")
		if err != nil || !bytes.Equal(ours[p], theirs) {
			t.Errorf("%s: origin %x; the kernel's %x (%v)", p, ours[p], theirs, err)
		}
	}
}

// getXattrBytes reads an extended attribute of path (not following a
// final symlink).
func getXattrBytes(path, name string) ([]byte, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// TestMergedDirWithoutOrigin: an upper directory made without overlay.origin
// (by another tool) over a lower one is given it on lookup, as the kernel
// does (ovl_fix_origin), with the same bytes; it then reports the lower
// directory's number, in stat and in readdir, and, being merged, a link
// count of 1, as on the kernel.
func TestMergedDirWithoutOrigin(t *testing.T) {
	testutil.RequireMounts(t)
	got := map[string]map[string]uint64{}
	nlinks := map[string]uint64{}
	origins := map[string][]byte{}
	for _, m := range []mounter{kernelOverlay{}, subject(t)} {
		l := newLayout(t, testDir(t), 1)
		for _, d := range []string{l.Lowers[0] + "/d/x", l.Upper + "/d/y"} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		u := mountUnion(t, m, l)
		got[m.name()] = inos(t, l.Merged, "d")
		var st unix.Stat_t
		if err := unix.Stat(l.Merged+"/d", &st); err != nil {
			t.Fatal(err)
		}
		nlinks[m.name()] = uint64(st.Nlink)
		checkDino(t, m.name(), l.Merged)
		u.mustUnmount()
		b, err := getXattrBytes(l.Upper+"/d", "trusted.overlay.origin")
		if err != nil {
			t.Errorf("%s: upper/d has no origin after a lookup: %v", m.name(), err)
		}
		origins[m.name()] = b
		var lst unix.Stat_t
		unix.Stat(l.Lowers[0]+"/d", &lst)
		if got[m.name()]["d"] != lst.Ino {
			t.Errorf("%s: d reports st_ino %d, want the lower directory's %d", m.name(), got[m.name()]["d"], lst.Ino)
		}
	}
	sub := subject(t).name()
	if nlinks[sub] != nlinks["kernel"] || nlinks[sub] != 1 {
		t.Errorf("nlink of the merged directory: kernel %d, %s %d; want 1", nlinks["kernel"], sub, nlinks[sub])
	}
	// The same format: header (version, magic, flags, type) and length;
	// the handles themselves name each layout's own lower directory (its
	// inode number first, for ext4), checked above through st_ino.
	k, u := origins["kernel"], origins[sub]
	if len(k) != len(u) || len(k) < 5 || !bytes.Equal(k[:5], u[:5]) {
		t.Errorf("origin of upper/d: kernel %x, %s %x: not the same format", k, sub, u)
	}
}
