package tests

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/unionfuse/unionfuse/fs"
	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// Metadata-only copy-up (metacopy=on) and data-only lower layers, against
// the kernel's overlayfs.

// metacopyTree is a lower tree for chown -R: files with data, a
// hard-linked pair, a symlink, a subdirectory.
func metacopyTree(t *testing.T, dir string) {
	t.Helper()
	for i, name := range []string{"app/a", "app/b", "app/sub/c", "app/sub/d", "app/big"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := strings.Repeat(name+"\n", 1+i*4000)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a", filepath.Join(dir, "app/ln")); err != nil {
		t.Fatal(err)
	}
}

// TestMetacopyChownTree: chown -R of a lower tree with metacopy=on, then
// one file opened for writing; the upper, written by unionfuse, mounts under
// the kernel with the same tree, and the other way round. Every file not
// written is a metacopy file in upper, without data blocks.
func TestMetacopyChownTree(t *testing.T) {
	testutil.RequireMounts(t)
	sub := unionfuseMounter{metacopy: true}
	ker := kernelOverlay{metacopy: true}
	for _, dir := range [][2]mounter{{sub, ker}, {ker, sub}} {
		writer, reader := dir[0], dir[1]
		t.Run(writer.name()+"-writes", func(t *testing.T) {
			l := newLayout(t, testDir(t), 1)
			metacopyTree(t, l.Lowers[0])
			compatCheck(t, writer, reader, l, func(root string) {
				err := filepathWalk(filepath.Join(root, "app"), func(p string) error {
					return os.Lchown(p, 1234, 1234)
				})
				if err != nil {
					t.Fatal(err)
				}
				f, err := os.OpenFile(filepath.Join(root, "app/sub/c"), os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteString("more\n"); err != nil {
					t.Fatal(err)
				}
				f.Close()
				var st, lst unix.Stat_t
				if err := unix.Lstat(filepath.Join(root, "app/big"), &st); err != nil {
					t.Fatal(err)
				}
				if err := unix.Lstat(filepath.Join(l.Lowers[0], "app/big"), &lst); err != nil {
					t.Fatal(err)
				}
				if st.Blocks != lst.Blocks || st.Size != lst.Size {
					t.Errorf("%s: a metacopy file shows size %d, %d blocks; its data has %d, %d", writer.name(), st.Size, st.Blocks, lst.Size, lst.Blocks)
				}
			})
			for _, name := range []string{"app/a", "app/b", "app/sub/d", "app/big"} {
				p := filepath.Join(l.Upper, name)
				if _, err := unix.Lgetxattr(p, "trusted.overlay.metacopy", nil); err != nil {
					t.Errorf("%s: upper %s has no trusted.overlay.metacopy: %v", writer.name(), name, err)
				}
			}
			if _, err := unix.Lgetxattr(filepath.Join(l.Upper, "app/sub/c"), "trusted.overlay.metacopy", nil); !errors.Is(err, unix.ENODATA) {
				t.Errorf("%s: upper app/sub/c, written, still has trusted.overlay.metacopy (%v)", writer.name(), err)
			}
			data, err := os.ReadFile(filepath.Join(l.Upper, "app/sub/c"))
			if err != nil || !strings.HasSuffix(string(data), "more\n") || !strings.HasPrefix(string(data), "app/sub/c\n") {
				t.Errorf("%s: upper app/sub/c holds %d bytes (%v), want the lower data and the write", writer.name(), len(data), err)
			}
		})
	}
}

// filepathWalk calls fn on root and everything below it, without
// following symbolic links.
func filepathWalk(root string, fn func(p string) error) error {
	return filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return fn(p)
	})
}

// TestMetacopyRefusals: metacopy=on is refused with the kernel's message
// where the kernel refuses it.
func TestMetacopyRefusals(t *testing.T) {
	testutil.RequireMounts(t)
	tests := []struct {
		kernelOpts string
		cfg        func(c *fs.Config)
		want       string
	}{
		{",redirect_dir=off", func(c *fs.Config) { c.Redirect = fs.RedirectOff }, "conflicting options: metacopy=on,redirect_dir=follow"},
		{",redirect_dir=follow", func(c *fs.Config) { c.Redirect = fs.RedirectFollow }, "conflicting options: metacopy=on,redirect_dir=follow"},
		{",redirect_dir=nofollow", func(c *fs.Config) { c.Redirect = fs.RedirectNoFollow }, "conflicting options: metacopy=on,redirect_dir=nofollow"},
		{",userxattr", func(c *fs.Config) { c.UserXattr = true }, "conflicting options: userxattr,metacopy=on"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimPrefix(tt.kernelOpts, ","), func(t *testing.T) {
			l := newLayout(t, testDir(t), 1)
			opts := "lowerdir=" + l.Lowers[0] + ",upperdir=" + l.Upper + ",workdir=" + l.Work + ",metacopy=on" + tt.kernelOpts
			if err := unix.Mount("overlay", l.Merged, "overlay", 0, opts); err == nil {
				unix.Unmount(l.Merged, 0)
				t.Fatalf("the kernel mounts -o %s", opts)
			}
			cfg := fs.Config{Lowers: l.Lowers, Upper: l.Upper, Work: l.Work, Metacopy: true}
			tt.cfg(&cfg)
			err := cfg.Validate(l.Merged)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate: %v, want %q", err, tt.want)
			}
		})
	}
}

// TestDataOnlyLayers: metacopy files of a lower layer whose absolute
// redirects lead into data-only layers (lowerdir=l::d1::d2) read the same
// on unionfuse as on the kernel, a missing blob fails the open (not the
// stat) on both, and the data-only layers' own files are not in the tree.
func TestDataOnlyLayers(t *testing.T) {
	testutil.RequireMounts(t)
	dir := testDir(t)
	lower, d1, d2 := filepath.Join(dir, "lower"), filepath.Join(dir, "d1"), filepath.Join(dir, "d2")
	for _, d := range []string{lower, d1, d2, filepath.Join(dir, "kmerged"), filepath.Join(dir, "umerged")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	blobs := map[string]string{"d1/ab/blob1": "one\n", "d2/cd/blob2": "two, longer\n", "d2/ab/blob1": "shadowed\n"}
	for name, data := range blobs {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	meta := map[string]struct {
		redirect string
		size     int64
	}{
		"f1": {"/ab/blob1", 4}, "sub/f2": {"/cd/blob2", 12}, "missing": {"/no/such", 5},
	}
	for name, m := range meta {
		p := filepath.Join(lower, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, m.size); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lsetxattr(p, "trusted.overlay.metacopy", nil, 0); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lsetxattr(p, "trusted.overlay.redirect", []byte(m.redirect), 0); err != nil {
			t.Fatal(err)
		}
	}
	kmerged, umerged := filepath.Join(dir, "kmerged"), filepath.Join(dir, "umerged")
	opts := "lowerdir=" + lower + "::" + d1 + "::" + d2
	if err := unix.Mount("overlay", kmerged, "overlay", unix.MS_RDONLY, opts); err != nil {
		t.Fatalf("mount -t overlay -o %s: %v", opts, err)
	}
	t.Cleanup(func() { unix.Unmount(kmerged, 0) })
	m, err := fs.Mount(umerged, fs.Config{Lowers: []string{lower}, DataLowers: []string{d1, d2}, NoPassthrough: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Unmount() })

	k := mustSnapshotLenient(t, kmerged)
	u := mustSnapshotLenient(t, umerged)
	if k != u {
		t.Errorf("the trees differ:\nkernel:\n%s\nunionfuse:\n%s", k, u)
	}
	for _, name := range []string{"f1", "sub/f2"} {
		kd, kerr := os.ReadFile(filepath.Join(kmerged, name))
		ud, uerr := os.ReadFile(filepath.Join(umerged, name))
		if string(kd) != string(ud) || (kerr == nil) != (uerr == nil) {
			t.Errorf("%s: kernel reads %q (%v), unionfuse %q (%v)", name, kd, kerr, ud, uerr)
		}
	}
	_, kerr := os.ReadFile(filepath.Join(kmerged, "missing"))
	_, uerr := os.ReadFile(filepath.Join(umerged, "missing"))
	if !errors.Is(kerr, syscall.ENOENT) || !errors.Is(uerr, syscall.ENOENT) {
		t.Errorf("missing blob: kernel %v, unionfuse %v; want ENOENT from both", kerr, uerr)
	}
}

// mustSnapshotLenient lists root's names, types, modes and sizes, one per
// line, skipping unreadable data (a missing blob).
func mustSnapshotLenient(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b.WriteString(rel + " " + strings.TrimSpace(os.FileMode(st.Mode&0o777).String()) + " " + strconv.FormatInt(st.Size, 10) + " " + strconv.FormatInt(st.Blocks, 10) + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
