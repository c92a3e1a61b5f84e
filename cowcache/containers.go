package cowcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
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

// Records the runner keeps beside containers/, outside any container's
// directory because they outlive it or span containers.
const (
	containerNamesDir = "container-names"
	containerExitsDir = "container-exits"
	// exitRecordAge is how long an exit record is kept: a wait that was
	// polling when its container was removed reads it within a moment.
	exitRecordAge = 10 * time.Minute
)

// ContainerNameFile returns container-names/<name>, which holds the id of
// the container that has the name. The runner creates it with O_EXCL (the
// directory first, when missing), so that of two concurrent creates only
// one takes a name.
func (s *Store) ContainerNameFile(name string) string {
	return s.path(containerNamesDir, name)
}

// ContainerExitFile returns container-exits/<id>, where the monitor of a
// container removed when it exits (run --rm) leaves its exit status for a
// wait that then finds it gone; the wait removes it. The runner creates
// the directory when missing. Records older than ten minutes are removed
// by the next writer of the store (Cleanup).
func (s *Store) ContainerExitFile(id string) string {
	return s.path(containerExitsDir, id)
}

// dropOldExits removes the exit records nobody waited for.
func (s *Store) dropOldExits() {
	ents, _ := os.ReadDir(s.path(containerExitsDir))
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > exitRecordAge {
			os.Remove(s.path(containerExitsDir, e.Name()))
		}
	}
}
