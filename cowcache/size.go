package cowcache

import (
	"errors"
	"fmt"
	"os"

	"github.com/unionfuse/unionfuse/internal/dirwalk"
	"golang.org/x/sys/unix"
)

// DirSize returns the bytes of the files below dir as Docker counts a
// layer: the apparent sizes of regular files and symbolic links, each
// hard-linked inode once. Directories, whiteouts and holes count nothing;
// a metacopy file counts its blocks, as du(1) sees it (metacopy.go).
// A missing dir has size 0.
func DirSize(dir string) (int64, error) {
	seen := map[uint64]bool{}
	var total int64
	err := dirwalk.Walk(dir, func(e *dirwalk.Entry) error {
		switch e.Stat.Mode & unix.S_IFMT {
		case unix.S_IFREG, unix.S_IFLNK:
		default:
			return nil
		}
		if e.Stat.Nlink > 1 {
			if seen[e.Stat.Ino] {
				return nil
			}
			seen[e.Stat.Ino] = true
		}
		if e.Stat.Mode&unix.S_IFMT == unix.S_IFREG {
			total += diskBytes(e.ProcPath(), e.Stat.Size, e.Stat.Blocks) // a metacopy file's blocks
		} else {
			total += e.Stat.Size
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Lstat(dir); errors.Is(serr, os.ErrNotExist) {
			return 0, nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dir, err)
	}
	return total, nil
}

// ImageUsage is the disk use of one image.
type ImageUsage struct {
	Image
	// SharedSize is the bytes of its layers that other images use too.
	SharedSize int64
	// UniqueSize is Size - SharedSize: what removing it alone frees.
	UniqueSize int64
	// Containers is how many containers use it.
	Containers int
}

// ContainerUsage is the disk use of one container.
type ContainerUsage struct {
	ID    string
	Image Digest
	// Size is the bytes of its writable layer (docker ps -s "size").
	Size int64
	// VirtualSize is Size plus the size of its image (docker's "virtual").
	VirtualSize int64
}

// Usage is the disk use of the whole store (unionfuse system df).
type Usage struct {
	Images     []ImageUsage
	Containers []ContainerUsage
	// Layers is every committed layer; LayersSize their total, each once.
	Layers     []Layer
	LayersSize int64
	// ImagesSize is the bytes of the layers that some image uses, each
	// layer once; ImagesReclaimable what removing every image no container
	// uses would free.
	ImagesSize        int64
	ImagesReclaimable int64
	// DanglingLayersSize is the bytes of layers no image uses.
	DanglingLayersSize int64
	// BlobsSize is the bytes of the kept layer tarballs, manifests and
	// configs (images/blobs).
	BlobsSize int64
	// CacheSize is the bytes of the build cache index.
	CacheSize int64
}

// DiskUsage measures the store.
func (s *Store) DiskUsage() (*Usage, error) {
	release, err := s.rlock()
	if err != nil {
		return nil, err
	}
	defer release()
	images, err := s.images()
	if err != nil {
		return nil, err
	}
	containers, err := s.containers()
	if err != nil {
		return nil, err
	}
	layers, err := s.layers()
	if err != nil {
		return nil, err
	}
	u := &Usage{Layers: layers}
	size := map[Digest]int64{}
	for _, l := range layers {
		size[l.ID] = l.Size
		u.LayersSize += l.Size
	}
	users := map[Digest]int{} // layer -> number of images using it
	for _, img := range images {
		for _, l := range img.Layers {
			users[l]++
		}
	}
	inUse := map[Digest]int{} // image -> containers
	for _, c := range containers {
		inUse[c.Image]++
	}
	busyLayers := map[Digest]bool{}
	for _, img := range images {
		if inUse[img.ID] > 0 {
			for _, l := range img.Layers {
				busyLayers[l] = true
			}
		}
	}
	for _, img := range images {
		iu := ImageUsage{Image: img, Containers: inUse[img.ID]}
		for _, l := range img.Layers {
			if users[l] > 1 {
				iu.SharedSize += size[l]
			}
		}
		iu.UniqueSize = img.Size - iu.SharedSize
		u.Images = append(u.Images, iu)
	}
	for id, n := range size {
		switch {
		case users[id] == 0:
			u.DanglingLayersSize += n
		default:
			u.ImagesSize += n
			if !busyLayers[id] {
				u.ImagesReclaimable += n
			}
		}
	}
	imgSize := map[Digest]int64{}
	for _, img := range images {
		imgSize[img.ID] = img.Size
	}
	for _, c := range containers {
		n, err := DirSize(s.path(containersDir, c.ID, "diff"))
		if err != nil {
			return nil, err
		}
		u.Containers = append(u.Containers, ContainerUsage{ID: c.ID, Image: c.Image, Size: n, VirtualSize: n + imgSize[c.Image]})
	}
	if u.BlobsSize, err = DirSize(s.path(imagesDir, "blobs")); err != nil {
		return nil, err
	}
	if u.CacheSize, err = DirSize(s.path(cacheDir)); err != nil {
		return nil, err
	}
	return u, nil
}
