package cowcache

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/unionfuse/unionfuse/internal/ovlfmt"
	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// makeUpper fills a directory the way a kernel overlay upper looks after
// a container wrote, deleted and replaced files.
func makeUpper(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t, testutil.ForWhiteouts)
	up := t.TempDir()
	testutil.BuildDir(t, up, []testutil.Item{
		{Path: "app/sub", Kind: testutil.Dir},
		{Path: "app/hello.sh", Kind: testutil.File, Data: "#!/bin/sh\necho hi\n", Mode: 0o755, Xattrs: map[string]string{"user.note": "kept"}},
		{Path: "app/sub/again.sh", Kind: testutil.Hardlink, Data: "app/hello.sh"},
		{Path: "app/link", Kind: testutil.Symlink, Data: "hello.sh"},
		{Path: "app/gone", Kind: testutil.Whiteout},
		{Path: "app/gone2", Kind: testutil.File, Xattrs: map[string]string{"user.overlay.whiteout": "y"}},
		{Path: "etc", Kind: testutil.Dir, Xattrs: map[string]string{"trusted.overlay.opaque": "y", "trusted.overlay.origin": "x"}},
	})
	return up
}

func TestWriteUpperTar(t *testing.T) {
	up := makeUpper(t)
	var buf bytes.Buffer
	if err := WriteUpperTar(&buf, up); err != nil {
		t.Fatal(err)
	}
	type ent struct {
		name, link string
		typ        byte
	}
	var got []ent
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ent{h.Name, h.Linkname, h.Typeflag})
		for k := range h.PAXRecords {
			if k == "SCHILY.xattr.trusted.overlay.origin" || k == "SCHILY.xattr.trusted.overlay.opaque" {
				t.Errorf("%s: overlay-private xattr %s in the tarball", h.Name, k)
			}
		}
		if h.Name == "app/hello.sh" && h.PAXRecords["SCHILY.xattr.user.note"] != "kept" {
			t.Errorf("app/hello.sh: user.note xattr lost: %v", h.PAXRecords)
		}
		if h.Name == "app/hello.sh" && h.ModTime.Nanosecond() == 0 {
			t.Errorf("app/hello.sh: mtime %v lost its nanoseconds", h.ModTime)
		}
	}
	want := []ent{
		{"app/", "", tar.TypeDir},
		{".wh.gone", "", tar.TypeReg},
		{".wh.gone2", "", tar.TypeReg},
		{"app/hello.sh", "", tar.TypeReg},
		{"app/link", "hello.sh", tar.TypeSymlink},
		{"app/sub/", "", tar.TypeDir},
		{"app/sub/again.sh", "app/hello.sh", tar.TypeLink},
		{"etc/", "", tar.TypeDir},
		{"etc/.wh..wh..opq", "", tar.TypeReg},
	}
	want[1].name, want[2].name = "app/.wh.gone", "app/.wh.gone2"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries:\n got %v\nwant %v", got, want)
	}
	var again bytes.Buffer
	if err := WriteUpperTar(&again, up); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("packing the same upper twice gave different tarballs")
	}
}

func TestCommitUpper(t *testing.T) {
	up := makeUpper(t)
	s := newStore(t)
	base, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("app/", "app/gone=x", "etc/", "etc/passwd=root"))), "base", "base.tar")
	if err != nil {
		t.Fatal(err)
	}
	cfg := base.Config.Config
	cfg.Cmd = []string{"/app/hello.sh"}
	img, err := s.CommitUpper(&base, UpperCommit{UpperDir: up, Config: &cfg, Name: "final:1.0",
		History: v1.History{CreatedBy: "/bin/sh -c #(nop) COPY dir:x in /app "}})
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Layers) != 2 || img.Layers[0] != base.Layers[0] {
		t.Fatalf("layers %v, want the base's and one more", img.Layers)
	}
	if !reflect.DeepEqual(img.Names, []string{"final:1.0"}) || !reflect.DeepEqual(img.Config.Config.Cmd, cfg.Cmd) {
		t.Errorf("names %v, cmd %v", img.Names, img.Config.Config.Cmd)
	}
	if h := img.Config.History; len(h) != 2 || h[1].EmptyLayer || h[1].CreatedBy == "" {
		t.Errorf("history %+v", h)
	}
	top := s.LayerDir(img.Layers[1])
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(top, "app/gone2"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("app/gone2 in the layer is not a whiteout: %v %o", err, st.Mode)
	}
	var a, b unix.Stat_t
	unix.Lstat(filepath.Join(top, "app/hello.sh"), &a)
	unix.Lstat(filepath.Join(top, "app/sub/again.sh"), &b)
	if a.Ino != b.Ino {
		t.Error("hard link lost")
	}
	x := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(top, "etc"), ovlfmt.Trusted.Opaque, x); err != nil || string(x[:n]) != "y" {
		t.Errorf("etc is not opaque in the layer: %v", err)
	}

	// The same upper on the same base is the same layer, stored once.
	img2, err := s.CommitUpper(&base, UpperCommit{UpperDir: up})
	if err != nil {
		t.Fatal(err)
	}
	if img2.Layers[1] != img.Layers[1] || !reflect.DeepEqual(img2.Config.Config.Cmd, base.Config.Config.Cmd) {
		t.Errorf("recommit: layer %s vs %s, cmd %v", img2.Layers[1].Short(), img.Layers[1].Short(), img2.Config.Config.Cmd)
	}
}

func TestCommitUpperEmptyLayer(t *testing.T) {
	s := newStore(t)
	base, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("a=a"))), "base", "base.tar")
	if err != nil {
		t.Fatal(err)
	}
	cfg := v1.Config{Cmd: []string{"/bin/sh", "-c", "/app/hello.sh"}}
	img, err := s.CommitUpper(&base, UpperCommit{Config: &cfg, History: v1.History{CreatedBy: "/bin/sh -c #(nop)  CMD"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(img.Layers, base.Layers) || img.ID == base.ID || len(img.Names) != 0 {
		t.Errorf("layers %v (base %v), id %s, names %v", img.Layers, base.Layers, img.ID.Short(), img.Names)
	}
	h, err := s.History(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || !h[0].EmptyLayer || h[0].Size != 0 || h[1].ID != base.ID {
		t.Errorf("history %+v", h)
	}
	// From scratch, with nothing: an image of no layers.
	empty, err := s.CommitUpper(nil, UpperCommit{History: v1.History{CreatedBy: "scratch"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(empty.Layers) != 0 {
		t.Errorf("layers %v", empty.Layers)
	}
	// A missing upper directory is an error and adds nothing.
	before, _ := s.Images()
	if _, err := s.CommitUpper(&base, UpperCommit{UpperDir: filepath.Join(t.TempDir(), "nope")}); err == nil {
		t.Error("commit of a missing upper succeeded")
	}
	if after, _ := s.Images(); len(after) != len(before) {
		t.Errorf("%d images after a failed commit, %d before", len(after), len(before))
	}
}

// A user's file named like an AUFS whiteout or opaque marker is refused,
// naming the file, and never turns into a whiteout in the layer.
func TestCommitUpperRefusesAufsNames(t *testing.T) {
	for _, name := range []string{".wh.etc", "etc/.wh..wh..opq", "etc/.wh.passwd"} {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			base, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("etc/", "etc/passwd=root"))), "base", "base.tar")
			if err != nil {
				t.Fatal(err)
			}
			up := t.TempDir()
			os.Mkdir(filepath.Join(up, "etc"), 0o755)
			if err := os.WriteFile(filepath.Join(up, name), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			before, _ := s.Images()
			_, err = s.CommitUpper(&base, UpperCommit{UpperDir: up, Name: "w:1"})
			if err == nil || !strings.Contains(err.Error(), "/"+name+":") || !strings.Contains(err.Error(), "whiteout") ||
				strings.Contains(err.Error(), "unpack stopped") {
				t.Fatalf("commit of an upper holding /%s: %v", name, err)
			}
			if after, _ := s.Images(); len(after) != len(before) {
				t.Errorf("a refused commit added an image")
			}
		})
	}
}
