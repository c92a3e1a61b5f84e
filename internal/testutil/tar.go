package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"maps"
	"path"
	"slices"
	"testing"
)

// Tar returns an uncompressed tarball of items, in order, as an image
// layer in the OCI format: a Whiteout is an empty file .wh.<name>; Xattrs
// are SCHILY.xattr. records, written as they are (an OCI opaque directory
// is a file d/.wh..wh..opq in the list). Paths are written as they are
// given, hostile ones too; entries have FixedTime as their time.
func Tar(t testing.TB, items []Item) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, it := range items {
		h := &tar.Header{Name: it.Path, Mode: int64(it.perm()), Uid: it.UID, Gid: it.GID,
			ModTime: FixedTime, Format: tar.FormatPAX}
		var body []byte
		switch it.Kind {
		case File, XattrWhiteout:
			h.Typeflag = tar.TypeReg
			body = append(make([]byte, it.Sparse), it.Data...)
		case Whiteout:
			h.Typeflag, h.Mode = tar.TypeReg, 0o644
			h.Name = path.Join(path.Dir(it.Path), ".wh."+path.Base(it.Path))
		case Dir:
			h.Typeflag = tar.TypeDir
		case Symlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, it.Data
		case Hardlink:
			h.Typeflag, h.Linkname = tar.TypeLink, it.Data
		case Fifo:
			h.Typeflag = tar.TypeFifo
		case Device:
			major, minor, err := it.devNumbers()
			if err != nil {
				t.Fatal(err)
			}
			h.Typeflag, h.Devmajor, h.Devminor = tar.TypeChar, int64(major), int64(minor)
		default:
			t.Fatalf("%s: unknown kind %q", it.Path, it.Kind)
		}
		xattrs := it.Xattrs
		if it.Kind == XattrWhiteout {
			xattrs = map[string]string{"trusted.overlay.whiteout": ""}
			for k, v := range it.Xattrs {
				xattrs[k] = v
			}
		}
		for _, k := range slices.Sorted(maps.Keys(xattrs)) {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = xattrs[k]
		}
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar %s: %v", it.Path, err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatalf("tar %s: %v", it.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Gzip compresses b.
func Gzip(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}
