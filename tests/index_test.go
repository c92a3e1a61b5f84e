package tests

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestIndexHardLinks: with index=on, the names of a hard-linked lower file
// stay one file across copy-up, as on the kernel with index=on, compared
// op by op on the differential layers (hl1, hl2 and d2/hl3 are one lower
// file; fifo1 and fifo2 one lower fifo), uppers included (overlay.nlink).
func TestIndexHardLinks(t *testing.T) {
	testutil.RequireMounts(t)
	if os.Getenv(subjectEnv) == "kernel" {
		t.Skip("runs unionfuse with index=on")
	}
	cases := []scriptedCase{
		{"write through one name, read through the others", []*op{
			{Kind: "append", P: "hl1", Size: 100, Fill: 1},
			{Kind: "read", P: "hl2"}, {Kind: "stat", P: "d2/hl3"}, {Kind: "read", P: "d2/hl3"}}},
		{"unlink the names one by one", []*op{
			{Kind: "unlink", P: "hl2"}, {Kind: "stat", P: "hl1"},
			{Kind: "append", P: "d2/hl3", Size: 10, Fill: 2}, {Kind: "stat", P: "hl1"},
			{Kind: "unlink", P: "hl1"}, {Kind: "stat", P: "d2/hl3"}, {Kind: "unlink", P: "d2/hl3"}}},
		{"link a lower name, then write through the new one", []*op{
			{Kind: "link", P: "hl1", Q: "updir/x"}, {Kind: "stat", P: "hl2"},
			{Kind: "append", P: "updir/x", Size: 10, Fill: 3}, {Kind: "read", P: "d2/hl3"}}},
		{"rename over a name, and between two names", []*op{
			{Kind: "rename", P: "up1", Q: "hl2"}, {Kind: "stat", P: "hl1"},
			{Kind: "rename", P: "hl1", Q: "d2/hl3"}, {Kind: "stat", P: "hl1"}, {Kind: "stat", P: "d2/hl3"}}},
		{"chmod, truncate and xattrs through several names", []*op{
			{Kind: "chmod", P: "hl1", Mode: 0o600}, {Kind: "truncate", P: "hl2", Size: 3},
			{Kind: "setxattr", P: "d2/hl3", Name: "user.a", Value: "v"}, {Kind: "stat", P: "hl1"}}},
		{"a hard-linked lower fifo", []*op{
			{Kind: "chmod", P: "fifo1", Mode: 0o600}, {Kind: "stat", P: "fifo2"}, {Kind: "unlink", P: "fifo2"}}},
	}
	runScripted(t, []mounter{unionfuseMounter{index: true}}, cases)
}

// TestIndexKernelCompat: an upper and work directory written by unionfuse
// with index=on mount with the kernel's index=on showing the same tree
// (link counts included), and the other way round.
func TestIndexKernelCompat(t *testing.T) {
	testutil.RequireMounts(t)
	k, u := kernelOverlay{index: true}, unionfuseMounter{index: true}
	for _, dir := range [][2]mounter{{u, k}, {k, u}} {
		writer, reader := dir[0], dir[1]
		t.Run(writer.name()+"-writes", func(t *testing.T) {
			l := newLayout(t, testDir(t), 1)
			low := l.Lowers[0]
			os.WriteFile(filepath.Join(low, "a"), []byte("hello\n"), 0o644)
			for _, n := range []string{"b", "c", "d"} {
				if err := os.Link(filepath.Join(low, "a"), filepath.Join(low, n)); err != nil {
					t.Fatal(err)
				}
			}
			compatCheck(t, writer, reader, l, func(root string) {
				f, err := os.OpenFile(filepath.Join(root, "a"), os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteString("more\n")
				f.Close()
				if err := os.Remove(filepath.Join(root, "b")); err != nil {
					t.Fatal(err)
				}
				if err := os.Link(filepath.Join(root, "c"), filepath.Join(root, "e")); err != nil {
					t.Fatal(err)
				}
			})
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(l.Upper, "a"), &st); err != nil || st.Nlink != 4 {
				t.Errorf("upper/a: nlink %d, %v; want 4 (a, c, e and the index entry)", st.Nlink, err)
			}
			if v, err := getXattr(filepath.Join(l.Upper, "a"), "trusted.overlay.nlink"); err != nil || v != "U+0" {
				t.Errorf("upper/a: trusted.overlay.nlink = %q, %v; want U+0 (4 names: a, c, e and d, still lower)", v, err)
			}
		})
	}
}

// TestIndexRemount: in a later mount over an existing index entry, a change
// through one name (upper or still lower) shows through the others at
// once, as on the kernel: link counts, size and owner.
func TestIndexRemount(t *testing.T) {
	testutil.RequireMounts(t)
	l := newLayout(t, testDir(t), 1)
	low := l.Lowers[0]
	os.WriteFile(filepath.Join(low, "a"), []byte("hello\n"), 0o644)
	for _, n := range []string{"b", "c"} {
		if err := os.Link(filepath.Join(low, "a"), filepath.Join(low, n)); err != nil {
			t.Fatal(err)
		}
	}
	m := unionfuseMounter{index: true}
	u := mountUnion(t, m, l)
	f, err := os.OpenFile(filepath.Join(l.Merged, "a"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("more\n")
	f.Close()
	u.mustUnmount()

	mountUnion(t, m, l)
	stat := func(name string) unix.Stat_t {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(l.Merged, name), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, n := range []string{"a", "b", "c"} {
		stat(n) // the kernel caches every name's attributes
	}
	if err := os.Remove(filepath.Join(l.Merged, "b")); err != nil {
		t.Fatal(err)
	}
	if st := stat("a"); st.Nlink != 2 {
		t.Errorf("a after rm b: nlink %d, want 2", st.Nlink)
	}
	if err := os.Chown(filepath.Join(l.Merged, "c"), 5, -1); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(l.Merged, "a"), 2); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "c"} {
		if st := stat(n); st.Nlink != 2 || st.Size != 2 || st.Uid != 5 {
			t.Errorf("%s after rm b, chown c, truncate a: nlink %d size %d uid %d; want 2, 2, 5", n, st.Nlink, st.Size, st.Uid)
		}
	}
}
