package tests

import (
	"fmt"
	"os"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestRedirectDir renames directories that have lower content, on the
// kernel's overlayfs (redirect_dir=on) and on unionfuse side by side, on
// the differential test's layers: after each operation the results and the
// merged trees agree, and after unmounting so do the upper directories,
// redirect xattrs included. With redirect_dir=off, both refuse (EXDEV).
func TestRedirectDir(t *testing.T) {
	testutil.RequireMounts(t)
	sub := subject(t)
	cases := []scriptedCase{
		{"rename a merged directory within its parent", []*op{
			{Kind: "rename", P: "d1", Q: "d9"},
			{Kind: "readdir", P: "d9"}, {Kind: "read", P: "d9/a"}, {Kind: "stat", P: "d9/sub/c"},
			{Kind: "readdir", P: "d9/sub/deep"}, {Kind: "stat", P: "d1"}}},
		{"move a merged directory across the tree", []*op{
			{Kind: "mkdir", P: "updir/in", Mode: 0o755},
			{Kind: "rename", P: "d1/sub", Q: "updir/in/moved"},
			{Kind: "read", P: "updir/in/moved/c"}, {Kind: "readdir", P: "updir/in/moved/deep"},
			{Kind: "readdir", P: "d1"}}},
		{"rename a renamed directory again, and back to its name", []*op{
			{Kind: "rename", P: "d1", Q: "d9"},
			{Kind: "rename", P: "d9", Q: "updir/d1b"},
			{Kind: "read", P: "updir/d1b/sub/c"},
			{Kind: "rename", P: "updir/d1b", Q: "d1"},
			{Kind: "readdir", P: "d1"}, {Kind: "read", P: "d1/a"}}},
		{"rename a merged directory over an empty merged directory", []*op{
			{Kind: "unlink", P: "d1/sub/deep/x"},
			{Kind: "rename", P: "d2", Q: "d1/sub/deep"},
			{Kind: "readdir", P: "d1/sub/deep"}, {Kind: "readdir", P: "d1/sub"}}},
		{"rename a merged directory over an empty upper directory", []*op{
			{Kind: "mkdir", P: "updir/e", Mode: 0o700},
			{Kind: "rename", P: "d1", Q: "updir/e"},
			{Kind: "readdir", P: "updir/e"}}},
		{"rename a merged directory over a non-empty directory", []*op{
			{Kind: "rename", P: "d1", Q: "d2"}}},
		{"delete inside a renamed directory, then the directory", []*op{
			{Kind: "rename", P: "d1", Q: "d9"},
			{Kind: "unlink", P: "d9/a"}, {Kind: "unlink", P: "d9/b"}, {Kind: "unlink", P: "d9/newmid"},
			{Kind: "unlink", P: "d9/u"}, {Kind: "unlink", P: "d9/sub/c"}, {Kind: "unlink", P: "d9/sub/deep/x"},
			{Kind: "rmdir", P: "d9"},
			{Kind: "rmdir", P: "d9/sub/deep"}, {Kind: "rmdir", P: "d9/sub"},
			{Kind: "readdir", P: "d9"}, {Kind: "rmdir", P: "d9"}, {Kind: "stat", P: "d9"}}},
		{"write into a renamed directory, then move it into a new one", []*op{
			{Kind: "rename", P: "d1", Q: "d9"},
			{Kind: "write", P: "d9/new", Mode: 0o644, Size: 100, Fill: 7},
			{Kind: "append", P: "d9/sub/c", Size: 10, Fill: 3},
			{Kind: "mkdir", P: "n9", Mode: 0o755},
			{Kind: "rename", P: "d9", Q: "n9/d1"},
			{Kind: "rename", P: "n9", Q: "n8"},
			{Kind: "readdir", P: "n8/d1"}, {Kind: "read", P: "n8/d1/sub/c"}, {Kind: "read", P: "n8/d1/a"}}},
		{"a directory made where a renamed one was", []*op{
			{Kind: "rename", P: "d1", Q: "d9"},
			{Kind: "mkdir", P: "d1", Mode: 0o755},
			{Kind: "readdir", P: "d1"}, {Kind: "readdir", P: "d9"}}},
		{"RENAME_EXCHANGE of two merged directories", []*op{
			{Kind: "exchange", P: "d1", Q: "d2"},
			{Kind: "readdir", P: "d1"}, {Kind: "readdir", P: "d2"}, {Kind: "read", P: "d2/sub/c"}}},
		{"RENAME_EXCHANGE of a merged directory and an upper one", []*op{
			{Kind: "exchange", P: "d1/sub", Q: "updir"},
			{Kind: "readdir", P: "updir"}, {Kind: "readdir", P: "d1/sub"}}},
		{"rename a directory of a lower layer only, with whiteouts below", []*op{
			{Kind: "rename", P: "ftodir", Q: "d3/ft"},
			{Kind: "read", P: "d3/ft/inner"},
			{Kind: "rename", P: "d2", Q: "d2b"}, {Kind: "readdir", P: "d2b"}}},
		{"rename an opaque merged directory, and one holding a renamed one", []*op{
			{Kind: "rename", P: "opq", Q: "opqb"}, {Kind: "readdir", P: "opqb"},
			{Kind: "rename", P: "d1/sub/deep", Q: "d1/sub/deeper"},
			{Kind: "rename", P: "d1/sub", Q: "d2/s"},
			{Kind: "readdir", P: "d2/s/deeper"}, {Kind: "stat", P: "d2/s/deeper/x"}}},
		{"chmod and xattrs on a renamed directory and inside it", []*op{
			{Kind: "rename", P: "d1", Q: "updir/d"},
			{Kind: "chmod", P: "updir/d", Mode: 0o700},
			{Kind: "setxattr", P: "updir/d/sub", Name: "user.a", Value: "v"},
			{Kind: "chmod", P: "updir/d/sub/deep/x", Mode: 0o600}}},
	}
	off := []*op{{Kind: "rename", P: "d1", Q: "d9"}, {Kind: "rename", P: "d1/sub", Q: "updir/s"},
		{Kind: "exchange", P: "d1", Q: "updir"}, {Kind: "rename", P: "updir", Q: "d1/up"}}
	runScripted(t, withPassthrough(sub), cases)
	if _, ok := sub.(unionfuseMounter); ok {
		t.Run("redirect_dir=off", func(t *testing.T) {
			m := unionfuseMounter{redirectOff: true}
			if f := replay(t, m, baseLayersOnly, off); f != nil {
				t.Error(f.report(m.name(), baseLayersOnly, len(off)))
			}
			// And it is EXDEV, not only the kernel's answer.
			r := newDiffRun(t, m, baseLayersOnly)
			defer r.abort()
			if err := unix.Rename(r.sub.Merged+"/d1", r.sub.Merged+"/d9"); err != unix.EXDEV {
				t.Errorf("rename of a merged directory with redirect_dir=off: %v, want EXDEV", err)
			}
		})
	}
}

// TestRedirectUserxattrAsRoot: user.overlay.* attributes can be set by the
// owner of any directory in a layer, so a root mount with userxattr must
// not follow a user.overlay.redirect (a path lookup without permission
// checks, which would show another user's private directory). As the
// kernel's overlay with userxattr, the lookup fails with EPERM; and
// directories with lower content are not renamed (EXDEV).
func TestRedirectUserxattrAsRoot(t *testing.T) {
	testutil.RequireMounts(t)
	for _, m := range []mounter{kernelOverlay{userxattr: true}, unionfuseMounter{userxattr: true}} {
		t.Run(m.name(), func(t *testing.T) {
			l := newLayout(t, testDir(t), 2)
			for _, d := range []string{l.Lowers[0] + "/mine", l.Lowers[1] + "/secret", l.Lowers[1] + "/plain"} {
				if err := os.MkdirAll(d, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			os.WriteFile(l.Lowers[1]+"/secret/key", []byte("topsecret\n"), 0o600)
			if err := unix.Setxattr(l.Lowers[0]+"/mine", "user.overlay.redirect", []byte("/secret"), 0); err != nil {
				t.Fatal(err)
			}
			mountUnion(t, m, l)
			var st unix.Stat_t
			if err := unix.Stat(l.Merged+"/mine/key", &st); err != unix.EPERM {
				t.Errorf("stat mine/key through a user.overlay.redirect: %v, want EPERM", err)
			}
			if err := unix.Rename(l.Merged+"/plain", l.Merged+"/moved"); err != unix.EXDEV {
				t.Errorf("rename of a lower directory: %v, want EXDEV", err)
			}
		})
	}
}

// TestRedirectInvalid: malformed redirects in a (hostile) lower layer fail
// the lookup with the kernel's errno rather than lead anywhere.
func TestRedirectInvalid(t *testing.T) {
	testutil.RequireMounts(t)
	for _, r := range []string{"/../../etc", "../real", "/a//b", "a/b", "..", "/real/"} {
		var got [2]error
		for i, m := range []mounter{kernelOverlay{}, subject(t)} {
			l := newLayout(t, testDir(t), 2)
			os.MkdirAll(l.Lowers[0]+"/evil", 0o755)
			os.MkdirAll(l.Lowers[1]+"/real/inside", 0o755)
			if err := unix.Setxattr(l.Lowers[0]+"/evil", "trusted.overlay.redirect", []byte(r), 0); err != nil {
				t.Fatal(err)
			}
			u := mountUnion(t, m, l)
			var st unix.Stat_t
			got[i] = unix.Stat(l.Merged+"/evil/inside", &st)
			u.mustUnmount()
		}
		if got[0] != got[1] || got[1] == nil {
			t.Errorf("redirect %q: stat evil/inside: kernel %v, unionfuse %v", r, got[0], got[1])
		}
	}
}

// TestRenameWhileWorkingBelow: operations inside a directory (through a
// descriptor of a subdirectory) go on while an ancestor with lower content
// moves back and forth; none may fail or land elsewhere, as on the kernel.
// (go-fuse used to learn of the move only after the server's lock was
// released, so an operation in between used the old path.)
func TestRenameWhileWorkingBelow(t *testing.T) {
	testutil.RequireMounts(t)
	l := newLayout(t, testDir(t), 1)
	os.MkdirAll(l.Lowers[0]+"/a/b/c", 0o755)
	os.MkdirAll(l.Lowers[0]+"/p", 0o755)
	mountUnion(t, subject(t), l)
	cfd, err := unix.Open(l.Merged+"/a/b/c", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(cfd)
	stop := make(chan struct{})
	moved := make(chan error, 1)
	go func() {
		paths := [2]string{l.Merged + "/a", l.Merged + "/p/a"}
		for i := 0; ; i++ {
			select {
			case <-stop:
				moved <- nil
				return
			default:
			}
			if err := unix.Rename(paths[i%2], paths[(i+1)%2]); err != nil {
				moved <- err
				return
			}
		}
	}()
	const n = 3000
	failed := map[string]int{}
	for i := 0; i < n; i++ {
		if err := unix.Mkdirat(cfd, fmt.Sprintf("d%d", i), 0o755); err != nil {
			failed[err.Error()]++
		}
	}
	close(stop)
	if err := <-moved; err != nil {
		t.Fatalf("rename: %v", err)
	}
	if len(failed) > 0 {
		t.Errorf("mkdir below a directory being renamed failed: %v", failed)
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/self/fd/%d", cfd))
	if err != nil || len(ents) != n {
		t.Errorf("the directory holds %d entries (%v), want %d", len(ents), err, n)
	}
}
