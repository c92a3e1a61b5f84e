package cowcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/unionfuse/unionfuse/internal/atomicfile"
)

// CacheKey identifies a build step for the build cache: the image the
// step starts from, the instruction as it reads after ARG and ENV
// expansion, and, for COPY and ADD, the digest of the sources' content
// and metadata. Two steps with equal keys give equivalent images.
type CacheKey struct {
	Parent  Digest `json:"parent"`            // image id; "" for scratch
	Step    string `json:"step"`              // the expanded instruction
	Sources Digest `json:"sources,omitempty"` // COPY/ADD sources; "" for none
}

// cacheEntry is one file of cache/: a key and the image it gave.
type cacheEntry struct {
	CacheKey
	Image Digest `json:"image"`
}

// digest names the key's file in cache/.
func (k CacheKey) digest() Digest {
	b, _ := json.Marshal(k) // a struct of strings always marshals
	return FromBytes(b)
}

// CachedImage returns the image a build step with key k made earlier, if
// the cache has it and the image is still in the store. An entry whose
// image was removed is ignored (and replaced by the next PutCache).
func (s *Store) CachedImage(k CacheKey) (Image, bool, error) {
	release, err := s.rlock()
	if err != nil {
		return Image{}, false, err
	}
	defer release()
	b, err := os.ReadFile(s.path(cacheDir, k.digest().Hex()))
	if errors.Is(err, os.ErrNotExist) {
		return Image{}, false, nil
	}
	if err != nil {
		return Image{}, false, fmt.Errorf("build cache: %w", err)
	}
	var e cacheEntry
	if err := json.Unmarshal(b, &e); err != nil || e.CacheKey != k {
		return Image{}, false, nil // unreadable or a collision: a miss
	}
	images, err := s.images()
	if err != nil {
		return Image{}, false, err
	}
	for _, img := range images {
		if img.ID == e.Image {
			return img, true, nil
		}
	}
	return Image{}, false, nil
}

// PutCache records that the build step with key k made the image id.
// The entry is written atomically; a later PutCache of the same key
// replaces it.
func (s *Store) PutCache(k CacheKey, id Digest) error {
	b, err := json.MarshalIndent(cacheEntry{CacheKey: k, Image: id}, "", "  ")
	if err != nil {
		return fmt.Errorf("build cache: %w", err)
	}
	release, err := s.wlock()
	if err != nil {
		return err
	}
	defer release()
	if err := atomicfile.WriteFile(s.path(cacheDir, k.digest().Hex()), b, 0o644); err != nil {
		return storageError(s.root, fmt.Errorf("build cache: %w", err))
	}
	return nil
}
