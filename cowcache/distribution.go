package cowcache

import (
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
)

// What the registry client (package registry) needs of the store besides
// Prepare, ApplyTar and AddImage.

// HasLayerBlob reports whether the layer with ChainID id is committed and
// its tarball d is stored: an image that has it at that place need not
// fetch or unpack it again ("Already exists").
func (s *Store) HasLayerBlob(id, d Digest) bool { return s.haveLayerAndBlob(id, d) }

// V1Image returns img as go-containerregistry's v1.Image: its config,
// manifest and layer tarballs exactly as stored, for writing to a
// registry.
func (s *Store) V1Image(img Image) (v1.Image, error) {
	c, err := s.imageCore(img)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(c)
}

// TempFile creates an empty file in the store's tmp/, owned by this
// process (Cleanup removes it if the process dies), on the store's
// filesystem: for a layer recompressed to be pushed. done closes and
// removes it.
func (s *Store) TempFile(purpose string) (*os.File, func(), error) {
	f, done, err := s.tempFile(purpose)
	return f, done, storageError(s.root, err)
}

// StorageError says plainly when err comes from the store's filesystem
// being full or read-only (as the store's own methods do); other errors
// are returned as they are.
func (s *Store) StorageError(err error) error { return storageError(s.root, err) }
