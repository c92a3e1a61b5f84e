package cowcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"os"
	"sort"
	"strings"
)

// repoDigestsName is images/repodigests.json: for each stored manifest,
// the REPOSITORY@DIGEST references it was pulled by or pushed as (docker
// inspect's RepoDigests). The digest is the registry's: that of an index
// when the image came through one, so it is not always the stored
// manifest's own.
const repoDigestsName = "repodigests.json"

// RepoDigests returns the registry references of the stored images, by
// manifest digest (Image.Manifest), each list sorted.
func (s *Store) RepoDigests() (map[Digest][]string, error) {
	release, err := s.rlock()
	if err != nil {
		return nil, err
	}
	defer release()
	return s.readRepoDigests()
}

func (s *Store) readRepoDigests() (map[Digest][]string, error) {
	b, err := os.ReadFile(s.path(imagesDir, repoDigestsName))
	if errors.Is(err, os.ErrNotExist) {
		return map[Digest][]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read repository digests: %w", err)
	}
	m := map[Digest][]string{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read repository digests: %w", err)
	}
	return m, nil
}

// AddRepoDigest records that the stored image with manifest md is
// repoDigest (REPOSITORY@sha256:...) in a registry. It replaces the
// image's earlier digest in the same repository. Records of images no
// longer stored are dropped.
func (s *Store) AddRepoDigest(md Digest, repoDigest string) error {
	repo, d, ok := strings.Cut(repoDigest, "@")
	if !ok {
		return fmt.Errorf("repository digest %q: want REPOSITORY@DIGEST", repoDigest)
	}
	if _, err := ParseDigest(d); err != nil {
		return fmt.Errorf("repository digest %q: %w", repoDigest, err)
	}
	release, err := s.wlock()
	if err != nil {
		return err
	}
	defer release()
	all, err := s.readRepoDigests()
	if err != nil {
		return err
	}
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	stored := map[Digest]bool{}
	for _, desc := range idx.Manifests {
		stored[Digest(desc.Digest.String())] = true
	}
	if !stored[md] {
		return fmt.Errorf("image with manifest %s: %w", md.Short(), ErrNotFound)
	}
	for k := range all {
		if !stored[k] {
			delete(all, k)
		}
	}
	var list []string
	for _, rd := range all[md] {
		if r, _, _ := strings.Cut(rd, "@"); r != repo {
			list = append(list, rd)
		}
	}
	list = append(list, repoDigest)
	sort.Strings(list)
	all[md] = list
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	return storageError(s.root, atomicfile.WriteFile(s.path(imagesDir, repoDigestsName), b, 0o644))
}
