package cowcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/unionfuse/unionfuse/internal/atomicfile"
)

// refNameAnnotation holds an image's name in images/index.json.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// blobPath returns where the blob d is stored.
func (s *Store) blobPath(d Digest) string {
	return s.path(imagesDir, "blobs", "sha256", d.Hex())
}

// initImages makes images/ a valid, empty OCI image layout if it is not one.
func (s *Store) initImages() error {
	if err := os.MkdirAll(s.path(imagesDir, "blobs", "sha256"), 0o700); err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	if _, err := os.Stat(s.path(imagesDir, "oci-layout")); err == nil {
		return nil
	}
	if err := atomicfile.WriteFile(s.path(imagesDir, "oci-layout"), []byte(`{"imageLayoutVersion": "1.0.0"}`), 0o644); err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	if _, err := os.Stat(s.path(imagesDir, "index.json")); err == nil {
		return nil
	}
	return s.writeIndex(&v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex})
}

// putBlob stores data as a blob (if it is not stored yet) and returns its
// digest. The caller holds the lock exclusive.
func (s *Store) putBlob(data []byte) (Digest, error) {
	d := FromBytes(data)
	if _, err := os.Stat(s.blobPath(d)); err == nil {
		return d, nil
	}
	if err := atomicfile.WriteFile(s.blobPath(d), data, 0o644); err != nil {
		return "", fmt.Errorf("store blob %s: %w", d.Short(), err)
	}
	return d, nil
}

// putBlobFile moves the synced file at path into the blob store as d. The
// caller holds the lock exclusive.
func (s *Store) putBlobFile(path string, d Digest) error {
	if _, err := os.Stat(s.blobPath(d)); err == nil {
		return nil
	}
	if err := os.Rename(path, s.blobPath(d)); err != nil {
		return fmt.Errorf("store blob %s: %w", d.Short(), err)
	}
	return atomicfile.Sync(filepath.Dir(s.blobPath(d)))
}

// readBlob returns the content of blob d.
func (s *Store) readBlob(d Digest) ([]byte, error) {
	b, err := os.ReadFile(s.blobPath(d))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d.Short(), err)
	}
	return b, nil
}

// OpenBlob opens blob d (a manifest, config or layer tarball) for reading.
func (s *Store) OpenBlob(d Digest) (io.ReadCloser, error) {
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", d.Short(), err)
	}
	return f, nil
}

// readIndex reads images/index.json.
func (s *Store) readIndex() (*v1.IndexManifest, error) {
	b, err := os.ReadFile(s.path(imagesDir, "index.json"))
	if err != nil {
		return nil, fmt.Errorf("read image index: %w", err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("read image index: %w", err)
	}
	return &idx, nil
}

// writeIndex replaces images/index.json atomically. The caller holds the
// lock exclusive (or is creating the store).
func (s *Store) writeIndex(idx *v1.IndexManifest) error {
	if idx.Manifests == nil {
		idx.Manifests = []v1.Descriptor{}
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("write image index: %w", err)
	}
	return atomicfile.WriteFile(s.path(imagesDir, "index.json"), b, 0o644)
}

// cleanupBlobs removes temporary files of interrupted blob writes. The
// caller holds the lock exclusive.
func (s *Store) cleanupBlobs() error {
	dir := filepath.Dir(s.blobPath(Digest("sha256:x")))
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	for _, e := range ents {
		if atomicfile.IsTemp(e.Name()) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// collectBlobs removes blobs that no image in the index refers to. The
// caller holds the lock exclusive.
func (s *Store) collectBlobs() error {
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, desc := range idx.Manifests {
		keep[desc.Digest.Hex] = true
		m, err := s.manifest(Digest(desc.Digest.String()))
		if err != nil {
			return err
		}
		keep[m.Config.Digest.Hex] = true
		for _, l := range m.Layers {
			keep[l.Digest.Hex] = true
		}
	}
	dir := filepath.Dir(s.blobPath(Digest("sha256:x")))
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("collect blobs: %w", err)
	}
	for _, e := range ents {
		if !keep[e.Name()] {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("collect blobs: %w", err)
			}
		}
	}
	return nil
}

// manifest reads and parses the manifest blob d.
func (s *Store) manifest(d Digest) (*v1.Manifest, error) {
	b, err := s.readBlob(d)
	if err != nil {
		return nil, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Short(), err)
	}
	return &m, nil
}

// layerMediaType returns the OCI media type of a layer blob.
func layerMediaType(c Compression) types.MediaType {
	switch c {
	case Gzip:
		return types.OCILayer
	case Zstd:
		return types.OCILayerZStd
	}
	return types.OCIUncompressedLayer
}
