package cowcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// ContainerRef is what the store needs to know of a container: which image
// its layers stand on. The runner writes containers/<id>/config.json with
// at least these fields; the store only reads them (to keep the image's
// layers while the container exists, and to measure it).
type ContainerRef struct {
	ID    string `json:"ID"`
	Image Digest `json:"Image"`
}

// containers lists containers/<id>/config.json. Directories without a
// config are skipped (the runner is still creating them).
func (s *Store) containers() ([]ContainerRef, error) {
	ents, err := os.ReadDir(s.path(containersDir))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []ContainerRef
	for _, e := range ents {
		b, err := os.ReadFile(s.path(containersDir, e.Name(), "config.json"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", e.Name(), err)
		}
		var c ContainerRef
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("container %s: config.json: %w", e.Name(), err)
		}
		c.ID = e.Name()
		out = append(out, c)
	}
	return out, nil
}

// ContainerDir returns containers/<id>, where the runner keeps a
// container's layer, mount point and records.
func (s *Store) ContainerDir(id string) string { return s.path(containersDir, id) }

// RemoveContainerDir removes containers/<id> and everything below it,
// read-only directories of the container's layer included.
func (s *Store) RemoveContainerDir(id string) error {
	return removeTree(s.path(containersDir, id))
}
