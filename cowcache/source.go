package cowcache

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// source is an image archive opened for reading: the files of an OCI
// image layout or of a docker-archive, whether they sit in a directory or
// in a tarball. Names are slash-separated and relative to the archive's
// root; nothing is ever extracted, so names cannot write anywhere.
type source interface {
	// open opens the regular file name and returns its size.
	open(name string) (io.ReadCloser, int64, error)
	// has reports whether the regular file name exists.
	has(name string) bool
	Close() error
}

// dirSource reads a directory through an os.Root: symbolic links that
// lead out of the directory are refused by the kernel-side walk.
type dirSource struct{ root *os.Root }

func openDirSource(dir string) (*dirSource, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &dirSource{root: r}, nil
}

func (d *dirSource) open(name string) (io.ReadCloser, int64, error) {
	// O_NONBLOCK: a FIFO (or a device) must not block open(2); it is
	// refused once fstat has told what it is.
	f, err := d.root.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s: not a regular file", name)
	}
	if err := unix.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

func (d *dirSource) has(name string) bool {
	fi, err := d.root.Stat(name)
	return err == nil && fi.Mode().IsRegular()
}

func (d *dirSource) Close() error { return d.root.Close() }

// tarSource reads a tarball on disk through an index of its entries made
// in one pass: regular files are read in place (io.SectionReader), and
// links inside the archive are followed inside the archive only.
type tarSource struct {
	f     *os.File
	files map[string]tarEntry
	links map[string]string // name -> cleaned target name
}

type tarEntry struct{ off, size int64 }

// maxArchiveEntries bounds the index of an archive's outer tarball.
const maxArchiveEntries = 1 << 20

func openTarSource(f *os.File) (*tarSource, error) {
	t := &tarSource{f: f, files: map[string]tarEntry{}, links: map[string]string{}}
	tr := tar.NewReader(f) // *os.File seeks over file data
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		if n >= maxArchiveEntries {
			return nil, fmt.Errorf("read archive: more than %d entries", maxArchiveEntries)
		}
		name, err := cleanName(hdr.Name)
		if err != nil || name == "" {
			continue // never used as a path; such names just cannot be referred to
		}
		if _, dup := t.files[name]; dup {
			return nil, &EntryError{Entry: hdr.Name, Err: ErrDuplicate}
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			if len(hdr.PAXRecords) > 0 && hasSparse(hdr.PAXRecords) {
				return nil, &EntryError{Entry: hdr.Name, Err: fmt.Errorf("%w: sparse file", ErrEntryType)}
			}
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, fmt.Errorf("read archive: %w", err)
			}
			t.files[name] = tarEntry{off: off, size: hdr.Size}
		case tar.TypeSymlink:
			t.links[name] = path.Join(path.Dir(name), hdr.Linkname)
		case tar.TypeLink:
			t.links[name] = path.Clean(hdr.Linkname)
		}
	}
	return t, nil
}

func hasSparse(pax map[string]string) bool {
	for k := range pax {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// resolve follows links inside the archive (at most 16) to a regular file.
func (t *tarSource) resolve(name string) (tarEntry, bool) {
	name = path.Clean(name)
	for range 16 {
		if e, ok := t.files[name]; ok {
			return e, true
		}
		next, ok := t.links[name]
		if !ok {
			return tarEntry{}, false
		}
		name = next
	}
	return tarEntry{}, false
}

func (t *tarSource) open(name string) (io.ReadCloser, int64, error) {
	e, ok := t.resolve(name)
	if !ok {
		return nil, 0, fmt.Errorf("%s: %w in the archive", name, os.ErrNotExist)
	}
	return io.NopCloser(io.NewSectionReader(t.f, e.off, e.size)), e.size, nil
}

func (t *tarSource) has(name string) bool {
	_, ok := t.resolve(name)
	return ok
}

func (t *tarSource) Close() error { return nil } // the caller owns f

// readSmall reads a whole file of at most limit bytes (manifests, configs).
func readSmall(src source, name string, limit int64) ([]byte, error) {
	rc, size, err := src.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d allowed", name, size, limit)
	}
	return io.ReadAll(io.LimitReader(rc, limit))
}

// readBlobChecked reads the blob d of an OCI layout (at most limit bytes)
// and checks its digest.
func readBlobChecked(src source, d Digest, limit int64) ([]byte, error) {
	b, err := readSmall(src, blobName(d), limit)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Short(), err)
	}
	if got := FromBytes(b); got != d {
		return nil, fmt.Errorf("blob %s: content has digest %s", d, got)
	}
	return b, nil
}

// blobName is where an OCI layout keeps blob d.
func blobName(d Digest) string { return "blobs/sha256/" + d.Hex() }

// hashFile returns the digest and size of a file of src.
func hashFile(src source, name string) (Digest, int64, error) {
	rc, _, err := src.open(name)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", name, err)
	}
	return Digest("sha256:" + hex.EncodeToString(h.Sum(nil))), n, nil
}
