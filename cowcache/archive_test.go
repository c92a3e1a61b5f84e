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

	"github.com/klauspost/compress/zstd"
	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

func TestHostileArchivesAreRefused(t *testing.T) {
	cases := []struct {
		name    string
		tarball []byte
		entry   string
		want    error
	}{
		{"dotdot", testutil.Tar(t, testutil.Spec("../evil=x")), "../evil", ErrUnsafePath},
		{"dotdot inside", testutil.Tar(t, testutil.Spec("a/", "a/../../evil=x")), "a/../../evil", ErrUnsafePath},
		{"absolute", testutil.Tar(t, testutil.Spec("/etc/evil=x")), "/etc/evil", ErrUnsafePath},
		{"duplicate", testutil.Tar(t, testutil.Spec("a=1", "./a=2")), "./a", ErrDuplicate},
		{"whiteout of an entry", testutil.Tar(t, testutil.Spec("a=1", ".wh.a=")), ".wh.a", ErrDuplicate},
		{"through symlink", testutil.Tar(t, testutil.Spec("etc->/etc", "etc/evil=x")), "etc/evil", ErrThroughSymlink},
		{"through relative symlink", testutil.Tar(t, testutil.Spec("up->..", "up/evil=x")), "up/evil", ErrThroughSymlink},
		{"through a hard link to a symlink", testutil.Tar(t, testutil.Spec("s->/etc", "h=>s", "h/evil=x")), "h/evil", ErrThroughSymlink},
		{"hardlink outside", testutil.Tar(t, testutil.Spec("passwd=>/etc/passwd")), "passwd", ErrUnsafePath},
		{"hardlink up", testutil.Tar(t, testutil.Spec("passwd=>../../etc/passwd")), "passwd", ErrUnsafePath},
		{"hardlink to unknown", testutil.Tar(t, testutil.Spec("a=>b")), "a", ErrLinkTarget},
		{"hardlink via symlink", testutil.Tar(t, testutil.Spec("s->/etc", "a=>s/passwd")), "a", ErrLinkTarget},
		{"overlay xattr", testutil.Tar(t, []testutil.Item{{Path: "d", Kind: testutil.Dir,
			Xattrs: map[string]string{"trusted.overlay.redirect": "/etc"}}}), "d", ErrOverlayXattr},
		{"aufs metadata", testutil.Tar(t, testutil.Spec(".wh..wh.plnk/1=")), ".wh..wh.plnk/1", ErrWhiteoutName},
		{"whiteout dir", testutil.Tar(t, testutil.Spec(".wh.x/")), ".wh.x", ErrWhiteoutName},
		{"whiteout through later symlink", testutil.Tar(t, testutil.Spec("a/.wh.x=", "a->/etc")), "a/.wh.x", ErrThroughSymlink},
		{"whiteout through a later hard link to a symlink", testutil.Tar(t, testutil.Spec("s->/etc", "a/.wh.x=", "a=>s")), "a/.wh.x", ErrThroughSymlink},
		{"opaque through later symlink", testutil.Tar(t, testutil.Spec("s/.wh..wh..opq=", "s->..")), "s/.wh..wh..opq", ErrThroughSymlink},
	}
	if os.Geteuid() != 0 {
		cases = append(cases, struct {
			name    string
			tarball []byte
			entry   string
			want    error
		}{"device", testutil.Tar(t, []testutil.Item{{Path: "null", Kind: testutil.Device, Mode: 0o666}}), "null", ErrDevice})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t)
			before := testutil.TreeOf(t, s.Root())
			_, err := s.Import(bytes.NewReader(c.tarball), "evil:1", "test")
			var ee *EntryError
			if !errors.As(err, &ee) || !errors.Is(err, c.want) {
				t.Fatalf("import: got %v, want an entry error %v", err, c.want)
			}
			if ee.Entry != c.entry {
				t.Errorf("error names entry %q, want %q", ee.Entry, c.entry)
			}
			if !strings.Contains(err.Error(), c.entry) {
				t.Errorf("message %q does not name the entry", err)
			}
			if after := testutil.TreeOf(t, s.Root()); !reflect.DeepEqual(before, after) {
				t.Errorf("store changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

func TestCorruptCompressionIsRefused(t *testing.T) {
	good := testutil.Gzip(testutil.Tar(t, testutil.Spec("a="+strings.Repeat("data", 1000))))
	truncated := good[:len(good)/2]
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-6] ^= 0xff // CRC32 in the trailer
	for name, b := range map[string][]byte{"truncated": truncated, "bad crc": badCRC, "truncated tar": testutil.Tar(t, testutil.Spec("a=xyz"))[:600]} {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			before := testutil.TreeOf(t, s.Root())
			if _, err := s.Import(bytes.NewReader(b), "x", "test"); err == nil {
				t.Fatal("import succeeded")
			} else {
				t.Log(err)
			}
			if after := testutil.TreeOf(t, s.Root()); !reflect.DeepEqual(before, after) {
				t.Errorf("store changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

func TestWhiteoutConversionBothWays(t *testing.T) {
	testutil.RequireRoot(t, testutil.ForWhiteouts)
	in := testutil.Tar(t, testutil.Spec("d/", "d/.wh..wh..opq=", "d/keep=k", ".wh.gone=", "plain=p"))
	dst := t.TempDir()
	u, err := unpackLayer(dst, bytes.NewReader(testutil.Gzip(in)), unpackOptions{allowDevices: true})
	if err != nil {
		t.Fatal(err)
	}
	if u.Compression != Gzip || u.DiffID != FromBytes(in) {
		t.Errorf("unpacked %+v, want gzip with DiffID %s", u, FromBytes(in))
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dst, "gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("gone: want a char 0/0 whiteout, got mode %o rdev %d err %v", st.Mode, st.Rdev, err)
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(dst, "d"), "trusted.overlay.opaque", buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Errorf("d: want trusted.overlay.opaque=y, got %q %v", buf[:n], err)
	}
	for _, n := range []string{".wh.gone", "d/.wh..wh..opq"} {
		if _, err := os.Lstat(filepath.Join(dst, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists on disk", n)
		}
	}
	// And back: the tarball of the directory has the OCI markers again.
	var out bytes.Buffer
	if err := packLayer(dst, &out); err != nil {
		t.Fatal(err)
	}
	first := FromBytes(out.Bytes())
	got := map[string]bool{}
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[strings.TrimSuffix(h.Name, "/")] = true
	}
	for _, n := range []string{".wh.gone", "d/.wh..wh..opq", "d/keep", "plain"} {
		if !got[n] {
			t.Errorf("packed tarball lacks %s: %v", n, got)
		}
	}
	var again bytes.Buffer
	packLayer(dst, &again)
	if first != FromBytes(again.Bytes()) {
		t.Error("packing the same directory twice gave different DiffIDs")
	}
}

func TestDecompressionBombIsRefused(t *testing.T) {
	zeros := make([]byte, 8<<20)
	enc, _ := zstd.NewWriter(nil)
	bigFile := enc.EncodeAll(testutil.Tar(t, testutil.Spec("zeros="+string(zeros))), nil)
	tail := testutil.Gzip(append(testutil.Tar(t, testutil.Spec("a=x")), zeros[:4<<20]...))
	for name, c := range map[string]struct {
		b    []byte
		max  int64
		want string
	}{
		"file past the cap":     {bigFile, 1 << 20, "more than 1.0 MiB uncompressed"},
		"zeros after the tar":   {tail, 0, "more than 1.0 MiB after the end of the tarball"},
		"under the cap":         {bigFile, 9 << 20, ""},
		"tail past a small cap": {tail, 512 << 10, "uncompressed"},
		"a small layer":         {testutil.Gzip(testutil.Tar(t, testutil.Spec("a=x"))), 0, ""},
	} {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			s.MaxLayerSize = c.max
			before := testutil.TreeOf(t, s.Root())
			_, err := s.Import(bytes.NewReader(c.b), "x", "bomb")
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("import: %v, want ErrTooLarge saying %q", err, c.want)
			}
			if after := testutil.TreeOf(t, s.Root()); !reflect.DeepEqual(before, after) {
				t.Errorf("store changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// TestImportRefusesIdsBeyond32Bits: an owner that does not fit in the
// kernel's 32-bit uid_t would be truncated by chown (2^55 becomes 0,
// root): such an entry is refused.
func TestImportRefusesIdsBeyond32Bits(t *testing.T) {
	testutil.RequireRoot(t, "chowns what it imports")
	for _, id := range []int{1 << 55, 1 << 32, 1<<32 - 1, -1} {
		tarball := testutil.Tar(t, []testutil.Item{{Path: "f", Kind: testutil.File, Mode: 0o4755, UID: id}})
		s := newStore(t)
		if _, err := s.Import(bytes.NewReader(tarball), "ids", "ids.tar"); err == nil || !strings.Contains(err.Error(), "uid") {
			t.Errorf("uid %d: %v, want a refusal", id, err)
		}
	}
}
