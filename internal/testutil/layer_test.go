package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSpec(t *testing.T) {
	opaque := map[string]string{"trusted.overlay.opaque": "y"}
	got := Spec("d/", "od/!opaque", "f=text", "empty", "l->../t", "h=>f", "p!fifo", "w!wh", "x!xwh")
	want := []Item{
		{Path: "d", Kind: Dir}, {Path: "od", Kind: Dir, Xattrs: opaque},
		{Path: "f", Kind: File, Data: "text"}, {Path: "empty", Kind: File},
		{Path: "l", Kind: Symlink, Data: "../t"}, {Path: "h", Kind: Hardlink, Data: "f"},
		{Path: "p", Kind: Fifo}, {Path: "w", Kind: Whiteout}, {Path: "x", Kind: XattrWhiteout},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Spec:\n got %+v\nwant %+v", got, want)
	}
}

func TestBuildDir(t *testing.T) {
	RequireRoot(t, ForWhiteouts)
	dir := t.TempDir()
	items := append(Spec("d/sub/", "od/!opaque", "d/f=hi", "d/h=>d/f", "l->d/f", "p!fifo", "w!wh", "x!xwh"),
		Item{Path: "own", Kind: File, Mode: 0o600, UID: 7, GID: 8, Xattrs: map[string]string{"user.k": "v"}},
		Item{Path: "sparse", Kind: File, Data: "end", Sparse: 1 << 16},
		Item{Path: "d/f", Kind: File, Data: "not made", Optional: true},
		Item{Path: "w/below", Kind: File, Optional: true})
	BuildDir(t, dir, items)
	want := []string{"d/", "d/f", "d/h", "d/sub/", "l -> d/f", "od/", "own", "p", "sparse", "w", "x"}
	if got := TreeOf(t, dir); !reflect.DeepEqual(got, want) {
		t.Errorf("TreeOf:\n got %q\nwant %q", got, want)
	}
	stat := func(name string) unix.Stat_t {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, name), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "d/f")); string(b) != "hi" || stat("d/h").Ino != stat("d/f").Ino {
		t.Errorf("d/f holds %q (the optional item must not replace it), or d/h is not its hard link", b)
	}
	if st := stat("w"); st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("w: mode %o rdev %d, want a char 0/0 whiteout", st.Mode, st.Rdev)
	}
	if st := stat("own"); st.Mode&0o7777 != 0o600 || st.Uid != 7 || st.Gid != 8 {
		t.Errorf("own: mode %o owner %d:%d", st.Mode&0o7777, st.Uid, st.Gid)
	}
	if st := stat("sparse"); st.Size != 1<<16+3 || st.Mtim.Nano() != FixedTime.UnixNano() {
		t.Errorf("sparse: size %d mtime %d", st.Size, st.Mtim.Nano())
	}
	for name, attr := range map[string]string{"od": "trusted.overlay.opaque", "x": "trusted.overlay.whiteout", "own": "user.k"} {
		if _, err := unix.Lgetxattr(filepath.Join(dir, name), attr, nil); err != nil {
			t.Errorf("%s: %s: %v", name, attr, err)
		}
	}
}

func TestTar(t *testing.T) {
	b := Tar(t, append(Spec("d/", "d/.wh..wh..opq", "d/gone!wh", "../evil=x", "l->/etc", "h=>../evil"),
		Item{Path: "null", Kind: Device, Data: "1:3"},
		Item{Path: "r", Kind: Dir, Xattrs: map[string]string{"trusted.overlay.redirect": "/etc"}}))
	type entry struct {
		name, link string
		typ        byte
		body       string
	}
	var got []entry
	zr, err := gzip.NewReader(bytes.NewReader(Gzip(b)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var redirect string
	for h, err := tr.Next(); err != io.EOF; h, err = tr.Next() {
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		got = append(got, entry{h.Name, h.Linkname, h.Typeflag, string(body)})
		if !h.ModTime.Equal(FixedTime) {
			t.Errorf("%s: time %v", h.Name, h.ModTime)
		}
		if h.Name == "r" {
			redirect = h.PAXRecords["SCHILY.xattr.trusted.overlay.redirect"]
		}
	}
	want := []entry{
		{"d", "", tar.TypeDir, ""}, {"d/.wh..wh..opq", "", tar.TypeReg, ""}, {"d/.wh.gone", "", tar.TypeReg, ""},
		{"../evil", "", tar.TypeReg, "x"}, {"l", "/etc", tar.TypeSymlink, ""}, {"h", "../evil", tar.TypeLink, ""},
		{"null", "", tar.TypeChar, ""}, {"r", "", tar.TypeDir, ""},
	}
	if !reflect.DeepEqual(got, want) || redirect != "/etc" {
		t.Errorf("Tar:\n got %q\nwant %q\nredirect %q", got, want, redirect)
	}
}
