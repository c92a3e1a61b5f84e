package cowcache

import "fmt"

// Removed reports what RemoveImage or Prune did, in docker's words.
type Removed struct {
	Untagged []string // names taken off
	Images   []Digest // images deleted
	Layers   []Digest // layers deleted (ChainIDs)
	// Reclaimed is the bytes of the deleted layers.
	Reclaimed int64
}

// RemoveImage removes the name ref from its image or, when ref is the
// image's only name or its id, the image itself, and then every layer that
// no other image or container uses. An image with several names is only
// removed by id with force; an image a container uses or that is mounted
// (see Mount) or that a Lease holds is never removed.
func (s *Store) RemoveImage(ref string, force bool) (Removed, error) {
	release, err := s.wlock()
	if err != nil {
		return Removed{}, err
	}
	defer release()
	img, err := s.resolve(ref)
	if err != nil {
		return Removed{}, err
	}
	byName := false
	if name, err := NormalizeName(ref); err == nil {
		for _, n := range img.Names {
			byName = byName || n == name
		}
	}
	idx, err := s.readIndex()
	if err != nil {
		return Removed{}, err
	}
	m := indexModel(idx)
	var r Removed
	if byName && len(img.Names) > 1 {
		name, _ := NormalizeName(ref)
		m.names[img.Manifest] = without(m.names[img.Manifest], name)
		r.Untagged = []string{name}
		return r, s.writeIndex(m.index())
	}
	if !byName && len(img.Names) > 1 && !force {
		return Removed{}, fmt.Errorf("image %s has %d names (%v): remove them by name, or by id with force", img.ID.Short(), len(img.Names), img.Names)
	}
	containers, err := s.containers()
	if err != nil {
		return Removed{}, err
	}
	for _, c := range containers {
		if c.Image == img.ID {
			return Removed{}, fmt.Errorf("image %s is used by container %s", img.ID.Short(), c.ID)
		}
	}
	leased, err := s.leased()
	if err != nil {
		return Removed{}, err
	}
	if leased[img.ID] {
		return Removed{}, fmt.Errorf("image %s is used by a running build", img.ID.Short())
	}
	mounted, err := s.mountedImages()
	if err != nil {
		return Removed{}, err
	}
	if at, ok := mounted[img.ID]; ok {
		return Removed{}, fmt.Errorf("image %s is mounted at %s: unmount it first (unionfuse umount %s)", img.ID.Short(), at, at)
	}
	for _, md := range append([]Digest(nil), m.order...) {
		if s.sameConfig(md, img.ID) {
			r.Untagged = append(r.Untagged, m.names[md]...)
			m.remove(md)
		}
	}
	if err := s.writeIndex(m.index()); err != nil {
		return Removed{}, err
	}
	r.Images = []Digest{img.ID}
	return r, s.collect(&r)
}

// sameConfig reports whether manifest md has the config id.
func (s *Store) sameConfig(md, id Digest) bool {
	mf, err := s.manifest(md)
	return err == nil && Digest(mf.Config.Digest.String()) == id
}

// collect removes every layer no image or container uses and every blob no
// image refers to, adding what it removed to r. The caller holds the lock
// exclusive.
func (s *Store) collect(r *Removed) error {
	images, err := s.images()
	if err != nil {
		return err
	}
	containers, err := s.containers()
	if err != nil {
		return err
	}
	used := map[Digest]bool{}
	imageLayers := map[Digest][]Digest{}
	for _, img := range images {
		imageLayers[img.ID] = img.Layers
		for _, l := range img.Layers {
			used[l] = true
		}
	}
	for _, c := range containers {
		for _, l := range imageLayers[c.Image] {
			used[l] = true
		}
	}
	layers, err := s.layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		if used[l.ID] {
			continue
		}
		if err := s.removeLayer(l.ID); err != nil {
			return err
		}
		r.Layers = append(r.Layers, l.ID)
		r.Reclaimed += l.Size
	}
	return s.collectBlobs()
}

// Prune removes dangling images (images without a name that no container
// uses, that are not mounted, that are not the parent of another image —
// see Intermediate — and that no Lease holds), then every layer and blob
// nobody uses, and the debris of interrupted operations.
func (s *Store) Prune() (Removed, error) {
	release, err := s.wlock()
	if err != nil {
		return Removed{}, err
	}
	defer release()
	idx, err := s.readIndex()
	if err != nil {
		return Removed{}, err
	}
	containers, err := s.containers()
	if err != nil {
		return Removed{}, err
	}
	mounted, err := s.mountedImages()
	if err != nil {
		return Removed{}, err
	}
	busy := map[Digest]bool{}
	for _, c := range containers {
		busy[c.Image] = true
	}
	for id := range mounted {
		busy[id] = true
	}
	leased, err := s.leased()
	if err != nil {
		return Removed{}, err
	}
	for id := range leased {
		busy[id] = true
	}
	all, err := s.images()
	if err != nil {
		return Removed{}, err
	}
	for id := range Intermediate(all) {
		busy[id] = true
	}
	m := indexModel(idx)
	var r Removed
	for _, md := range append([]Digest(nil), m.order...) {
		if len(m.names[md]) > 0 {
			continue
		}
		mf, err := s.manifest(md)
		if err != nil {
			return Removed{}, err
		}
		id := Digest(mf.Config.Digest.String())
		if busy[id] {
			continue
		}
		m.remove(md)
		r.Images = append(r.Images, id)
	}
	if err := s.writeIndex(m.index()); err != nil {
		return Removed{}, err
	}
	if err := s.pruneDownloads(); err != nil {
		return Removed{}, err
	}
	return r, s.collect(&r)
}
