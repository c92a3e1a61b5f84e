package cowcache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"github.com/unionfuse/unionfuse/internal/dirwalk"
	"github.com/unionfuse/unionfuse/internal/partial"
	"golang.org/x/sys/unix"
)

// Partial layers: a layer pulled lazily (registry's lazy pulls of eStargz
// blobs) is committed before its file data is local. Its diff/ holds
// every directory, link, device and attribute, and its regular files at
// their full size with the data not yet fetched (holes); the layer's
// partial/ directory says where the data comes from and what is local:
//
//	layers/<id>/diff            the tree, regular files sparse
//	layers/<id>/partial/blob    the blob's digest (the manifest's)
//	layers/<id>/partial/...     the fetcher's own files (registry's lazy.go)
//
// A partial layer is a committed layer in every other respect: images
// use it, containers mount it (the union fetches data before it reads
// it), rmi and prune remove it. It has no blob in the blob store until it
// is completed (CompletePartial), which is the moment it becomes a normal
// layer: the blob, checked against its digest and the DiffID, goes into
// the blob store and partial/ goes.

// The names of a partial layer's state (internal/partial).
const (
	partialDirName  = partial.DirName
	partialBlobName = partial.BlobName
)

// ApplyPartial fills Dir() from tree, the layer's entries as a table of
// contents gives them (regular files without content), with the rules
// of ApplyTar (hostile entries refused, OCI whiteouts converted); sizes
// gives those files (by name, cleaned as in the tree) their size, as a
// hole to be filled by the caller. u gives the DiffID and blob digest
// that the image's config and manifest name (checked when the layer is
// completed), files the fetcher's state to keep in partial/ (name ->
// content). The layer is committed as a partial layer.
func (p *Pending) ApplyPartial(u Unpacked, tree Entries, sizes map[string]int64, files map[string][]byte) error {
	if p.unpacked != nil {
		return errors.New("apply layer: a tarball was applied already")
	}
	opts := p.unpackOptions()
	opts.holes = sizes
	filesSize, err := extractTree(p.Dir(), tree, opts)
	if err != nil {
		return err
	}
	u.filesSize, u.sized = filesSize, true
	dir := filepath.Join(p.path(), partialDirName)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("apply partial layer: %w", err)
	}
	files[partialBlobName] = []byte(u.Digest)
	for name, b := range files {
		if strings.ContainsRune(name, '/') {
			return fmt.Errorf("apply partial layer: bad file name %q", name)
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return fmt.Errorf("apply partial layer: %w", err)
		}
	}
	p.unpacked = &u
	p.partial = true
	return nil
}

// PartialDir returns the partial/ directory of the layer whose diff/ is
// diffDir (as LayerDirs gives it), and whether the layer is partial.
func PartialDir(diffDir string) (string, bool) { return partial.Dir(diffDir) }

// IsPartial reports whether the committed layer id is partial.
func (s *Store) IsPartial(id Digest) bool {
	_, ok := PartialDir(s.LayerDir(id))
	return ok
}

// HasPartial reports whether one of img's layers is partial.
func (s *Store) HasPartial(img Image) bool {
	for _, id := range img.Layers {
		if s.IsPartial(id) {
			return true
		}
	}
	return false
}

// PartialUsage returns how many bytes of the regular files of the
// partial layer id are local (allocated on disk: holes are the data not
// fetched yet) and their size.
func (s *Store) PartialUsage(id Digest) (local, size int64, err error) {
	seen := map[uint64]bool{}
	err = dirwalk.Walk(s.LayerDir(id), func(e *dirwalk.Entry) error {
		if e.Stat.Mode&unix.S_IFMT != unix.S_IFREG || seen[e.Stat.Ino] {
			return nil
		}
		seen[e.Stat.Ino] = true
		size += e.Stat.Size
		local += min(e.Stat.Blocks*512, e.Stat.Size)
		return nil
	})
	return local, size, err
}

// partialSummary says, for GraphDriverData, which of img's layers are
// partial and how much of each is local ("" when none is).
func (s *Store) partialSummary(img Image) string {
	var parts []string
	for _, id := range img.Layers {
		if !s.IsPartial(id) {
			continue
		}
		local, size, err := s.PartialUsage(id)
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", id, err))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: %s of %s local", id, humanize.Bytes(uint64(local)), humanize.Bytes(uint64(size))))
	}
	return strings.Join(parts, ", ")
}

// PartialImageSummary says how much of img is still to be fetched: ""
// when none of its layers is partial, else "N of M layers partial, X of Y
// local" (the bytes of the partial layers' files).
func (s *Store) PartialImageSummary(img Image) string {
	var n int
	var local, size int64
	for _, id := range img.Layers {
		if !s.IsPartial(id) {
			continue
		}
		l, sz, err := s.PartialUsage(id)
		if err != nil {
			return fmt.Sprintf("layer %s: %v", id.Short(), err)
		}
		n, local, size = n+1, local+l, size+sz
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d layers partial, %s of %s local", n, len(img.Layers), humanize.Bytes(uint64(local)), humanize.Bytes(uint64(size)))
}

// partialBlob returns the blob digest of the partial layer id, or "".
func (s *Store) partialBlob(id Digest) Digest {
	b, err := os.ReadFile(s.path(layersDir, id.Hex(), partialDirName, partialBlobName))
	if err != nil {
		return ""
	}
	return Digest(strings.TrimSpace(string(b)))
}

// CompletePartial makes the partial layer id a normal one: blob, the
// path of a file holding the layer's blob, whose digest and DiffID the
// caller has checked, which it has synced and whose files it has filled
// into diff/, goes into the blob store, and partial/ is removed. A layer
// that is not partial (completed by another process meanwhile) is left
// as it is.
func (s *Store) CompletePartial(id Digest, blob string) error {
	release, err := s.wlock()
	if err != nil {
		return err
	}
	defer release()
	d := s.partialBlob(id)
	if d == "" {
		return nil
	}
	if err := s.putBlobFile(blob, d); err != nil {
		return fmt.Errorf("complete layer %s: %w", id.Short(), err)
	}
	dir := s.path(layersDir, id.Hex(), partialDirName)
	// The marker goes first: what an interruption leaves is a normal
	// layer with debris, never a partial layer without its state.
	if err := os.Remove(filepath.Join(dir, partialBlobName)); err != nil {
		return fmt.Errorf("complete layer %s: %w", id.Short(), err)
	}
	if err := atomicfile.Sync(dir); err != nil {
		return fmt.Errorf("complete layer %s: %w", id.Short(), err)
	}
	return os.RemoveAll(dir)
}
