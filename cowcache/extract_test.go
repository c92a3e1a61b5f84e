package cowcache

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/go-archive"
	"golang.org/x/sys/unix"
)

// metadataTarball is a layer with what makes unpacking hard: special mode
// bits, owners, xattrs, times before the epoch and an access time after
// the modification time, directories that come after their contents or
// never (implied), hard links to a file and to a symbolic link, a fifo
// and, as root, a read-only directory with a file in it (go-archive
// cannot fill one without CAP_DAC_OVERRIDE) and devices.
func metadataTarball(t *testing.T, root bool) []byte {
	t.Helper()
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, data string) {
		t.Helper()
		if h.ModTime.IsZero() {
			h.ModTime = mtime
		}
		h.Size = int64(len(data))
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "implied/deep/file", Mode: 0o644, Uid: 7, Gid: 8}, "in an implied dir")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "later/child", Mode: 0o600, Uid: 1000, Gid: 1000}, "child")
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "later/", Mode: 0o2750, Uid: 3, Gid: 4}, "")
	if root {
		add(&tar.Header{Typeflag: tar.TypeDir, Name: "ro/", Mode: 0o555}, "")
		add(&tar.Header{Typeflag: tar.TypeReg, Name: "ro/inside", Mode: 0o444}, "read-only dir")
	}
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}, "")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "suid", Mode: 0o4755, Uid: 1000, Gid: 50}, "#!/bin/sh\n")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "sgid", Mode: 0o2711, Uid: 0, Gid: 50}, "x")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "empty", Mode: 0o640, AccessTime: mtime.Add(time.Hour)}, "")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "old", Mode: 0o644, ModTime: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)}, "before the epoch")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "xattr", Mode: 0o644,
		PAXRecords: map[string]string{"SCHILY.xattr.user.color": "blue", "SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}}, "cap")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "big", Mode: 0o644}, strings.Repeat("0123456789abcdef", 1<<16))
	add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "abs", Linkname: "/etc/passwd", Uid: 5, Gid: 6}, "")
	add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "rel", Linkname: "implied/deep/file"}, "")
	add(&tar.Header{Typeflag: tar.TypeLink, Name: "hard", Linkname: "suid", Mode: 0o4755, Uid: 1000, Gid: 50}, "")
	add(&tar.Header{Typeflag: tar.TypeLink, Name: "hardsym", Linkname: "abs", Uid: 5, Gid: 6}, "")
	add(&tar.Header{Typeflag: tar.TypeFifo, Name: "fifo", Mode: 0o620, Uid: 9, Gid: 9}, "")
	if root {
		add(&tar.Header{Typeflag: tar.TypeChar, Name: "null", Mode: 0o666, Devmajor: 1, Devminor: 3}, "")
		add(&tar.Header{Typeflag: tar.TypeBlock, Name: "loop", Mode: 0o660, Gid: 6, Devmajor: 7, Devminor: 0}, "")
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// describeTree lists everything below dir with the metadata an unpack
// sets: type and mode, owner, size, link count, device, times, xattrs,
// the target of a symbolic link and a file's content.
func describeTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		mtime := st.Mtim.Nano()
		if strings.HasPrefix(rel, "implied") && d.IsDir() {
			mtime = 0 // made when needed: its time is the unpack's
		}
		line := fmt.Sprintf("%s mode=%o uid=%d gid=%d nlink=%d rdev=%d mtime=%d", rel, st.Mode, st.Uid, st.Gid, st.Nlink, st.Rdev, mtime)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, _ := os.ReadFile(p)
			if st.Nlink == 1 { // else the read through another name moved it
				line += fmt.Sprintf(" atime=%d", st.Atim.Nano())
			}
			line += fmt.Sprintf(" size=%d sum=%s", st.Size, FromBytes(b).Short())
		case unix.S_IFLNK:
			to, _ := os.Readlink(p)
			line += " -> " + to
		}
		buf := make([]byte, 4096)
		if n, err := unix.Llistxattr(p, buf); err == nil && n > 0 {
			names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
			sort.Strings(names)
			for _, name := range names {
				v := make([]byte, 256)
				m, _ := unix.Lgetxattr(p, name, v)
				line += fmt.Sprintf(" %s=%q", name, v[:max(m, 0)])
			}
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUnpackMatchesGoArchive: unpackLayer's own extraction makes the tree
// go-archive's Unpack (which it replaced) makes from the same tarball,
// metadata included.
func TestUnpackMatchesGoArchive(t *testing.T) {
	root := os.Geteuid() == 0
	in := metadataTarball(t, root)
	want, got := t.TempDir(), t.TempDir()
	if err := archive.Unpack(bytes.NewReader(in), want, &archive.TarOptions{NoLchown: !root}); err != nil {
		t.Fatal(err)
	}
	u, err := unpackLayer(got, bytes.NewReader(in), unpackOptions{allowDevices: root, noChown: !root})
	if err != nil {
		t.Fatal(err)
	}
	// What the unpack counted is what a walk counts.
	if n, err := DirSize(got); err != nil || !u.sized || u.filesSize != n {
		t.Errorf("unpack counted %d bytes (sized %v), DirSize %d (%v)", u.filesSize, u.sized, n, err)
	}
	w, g := describeTree(t, want), describeTree(t, got)
	if strings.Join(w, "\n") != strings.Join(g, "\n") {
		t.Errorf("unpacked tree differs from go-archive's\n got: %s\nwant: %s", strings.Join(g, "\n      "), strings.Join(w, "\n      "))
	}
}

// TestUnpackFillsReadOnlyDirectory: a directory gets its mode after its
// contents are made, so that one without write permission (0555, as an
// image's /proc) is filled also by a process without CAP_DAC_OVERRIDE.
func TestUnpackFillsReadOnlyDirectory(t *testing.T) {
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "ro/", Mode: 0o555, ModTime: mtime})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "ro/inside", Mode: 0o444, Size: 2, ModTime: mtime})
	tw.Write([]byte("hi"))
	tw.Close()
	dst := t.TempDir()
	t.Cleanup(func() { os.Chmod(filepath.Join(dst, "ro"), 0o755) })
	if _, err := unpackLayer(dst, bytes.NewReader(buf.Bytes()), unpackOptions{noChown: os.Geteuid() != 0}); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dst, "ro"), &st); err != nil || st.Mode&0o7777 != 0o555 || st.Mtim.Sec != mtime.Unix() {
		t.Errorf("ro: mode %o mtime %d, %v; want 555 and %d", st.Mode&0o7777, st.Mtim.Sec, err, mtime.Unix())
	}
	if b, err := os.ReadFile(filepath.Join(dst, "ro/inside")); string(b) != "hi" {
		t.Errorf("ro/inside: %q, %v", b, err)
	}
}

// TestUnpackHoles: ApplyPartial's sizes make holes of the regular files
// they name, which keep the entry's mode and times.
func TestUnpackHoles(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2022, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, name := range []string{"a", "d/b"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o4555, ModTime: mtime})
	}
	tw.Close()
	dst := t.TempDir()
	opts := unpackOptions{noChown: true, holes: map[string]int64{"a": 10 << 20, "d/b": 1}}
	u, err := unpackLayer(dst, bytes.NewReader(buf.Bytes()), opts)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := DirSize(dst); u.filesSize != n || n != 10<<20+1 {
		t.Errorf("unpack counted %d bytes, DirSize %d; want %d", u.filesSize, n, 10<<20+1)
	}
	for name, size := range opts.holes {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dst, name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Size != size || st.Blocks != 0 || st.Mode&0o7777 != 0o4555 || st.Mtim.Sec != mtime.Unix() {
			t.Errorf("%s: size %d blocks %d mode %o mtime %d; want a hole of %d, mode 4555, mtime %d",
				name, st.Size, st.Blocks, st.Mode&0o7777, st.Mtim.Sec, size, mtime.Unix())
		}
	}
}

// TestUnpackWhateverTheDirectory: the extractor skips chown and chmod
// where a new file already has its owner and mode; a umask that takes
// bits away, a setgid directory of another group (root only) and a
// default ACL each change what a new file gets, and the files (and
// links and fifos) come out as in a plain directory all the same.
func TestUnpackWhateverTheDirectory(t *testing.T) {
	root := os.Geteuid() == 0
	in := metadataTarball(t, root)
	unpack := func(prepare func(dst string) bool) ([]string, bool) {
		t.Helper()
		dst := t.TempDir()
		t.Cleanup(func() { os.Chmod(filepath.Join(dst, "ro"), 0o755) })
		if !prepare(dst) {
			return nil, false
		}
		if _, err := unpackLayer(dst, bytes.NewReader(in), unpackOptions{allowDevices: root, noChown: !root}); err != nil {
			t.Fatal(err)
		}
		var nondirs []string
		for _, line := range describeTree(t, dst) {
			if !strings.Contains(line, " mode=4") { // 040000: a directory
				nondirs = append(nondirs, line)
			}
		}
		return nondirs, true
	}
	want, _ := unpack(func(string) bool { return true })
	cases := map[string]func(dst string) bool{
		"umask 077": func(string) bool {
			old := unix.Umask(0o077)
			t.Cleanup(func() { unix.Umask(old) })
			return true
		},
		"default ACL": func(dst string) bool {
			// user::rw-, group::---, other::---: new files get 0600 at most.
			acl := []byte{2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
			return unix.Setxattr(dst, "system.posix_acl_default", acl, 0) == nil
		},
		"setgid directory": func(dst string) bool {
			return root && os.Chown(dst, 0, 4242) == nil && os.Chmod(dst, 0o2755) == nil
		},
	}
	for name, prepare := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := unpack(prepare)
			if !ok {
				t.Skip("not possible here")
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("unpacked tree differs from a plain directory's\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
			}
		})
	}
}
