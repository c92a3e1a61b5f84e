package cowcache

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NewImage is an image to add: its config and manifest exactly as they will
// be stored (their digests are the image's id and manifest digest), and
// its layers bottom first. Layers[i] is nil when layer i is committed
// already; otherwise it is a pending layer whose tarball (ApplyTar) is the
// manifest's layer i.
type NewImage struct {
	RawConfig   []byte
	RawManifest []byte
	Layers      []*Pending
	Names       []string // REPOSITORY:TAG, normalized
}

// AddImage commits the pending layers of img and adds the image, all under
// one exclusive lock: readers see the whole image or nothing. The config's
// rootfs.diff_ids must be those of the layers. Pending layers are aborted
// on error and dropped (committed or not) on success.
func (s *Store) AddImage(img NewImage) (Image, error) {
	for _, p := range img.Layers {
		if p != nil {
			defer p.Abort()
		}
	}
	var cfg v1.ConfigFile
	if err := json.Unmarshal(img.RawConfig, &cfg); err != nil {
		return Image{}, fmt.Errorf("add image: config: %w", err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(img.RawManifest, &m); err != nil {
		return Image{}, fmt.Errorf("add image: manifest: %w", err)
	}
	id := FromBytes(img.RawConfig)
	if m.Config.Digest.String() != string(id) {
		return Image{}, fmt.Errorf("add image: manifest names config %s, the config's digest is %s", m.Config.Digest, id)
	}
	if len(cfg.RootFS.DiffIDs) != len(img.Layers) || len(m.Layers) != len(img.Layers) {
		return Image{}, fmt.Errorf("add image %s: config has %d layers, manifest %d, given %d",
			id.Short(), len(cfg.RootFS.DiffIDs), len(m.Layers), len(img.Layers))
	}
	var parent Digest
	for i, p := range img.Layers {
		want := Digest(cfg.RootFS.DiffIDs[i].String())
		if p == nil {
			parent = ChainID(parent, want)
			continue
		}
		if p.unpacked == nil || p.unpacked.DiffID != want {
			return Image{}, fmt.Errorf("add image %s: layer %d: DiffID does not match the config's %s", id.Short(), i, want)
		}
		if p.unpacked.Digest != Digest(m.Layers[i].Digest.String()) {
			return Image{}, fmt.Errorf("add image %s: layer %d: digest %s does not match the manifest's %s",
				id.Short(), i, p.unpacked.Digest, m.Layers[i].Digest)
		}
		if p.parent != parent {
			return Image{}, fmt.Errorf("add image %s: layer %d prepared on the wrong parent", id.Short(), i)
		}
		if err := p.finish(); err != nil {
			return Image{}, err
		}
		parent = p.ID()
	}
	release, err := s.wlock()
	if err != nil {
		return Image{}, err
	}
	defer release()
	// On an error (a full disk, say) the layers this call committed go
	// again, with their blobs: the store is left as it was.
	var added, addedBlobs []Digest
	ok := false
	defer func() {
		if !ok {
			s.rollback(added, addedBlobs)
		}
	}()
	newBlob := func(d Digest) {
		if _, err := os.Stat(s.blobPath(d)); err != nil {
			addedBlobs = append(addedBlobs, d)
		}
	}
	for i, p := range img.Layers {
		if p == nil {
			chain := ChainIDs(diffIDsOf(&cfg)[:i+1])
			if _, err := s.Layer(chain[i]); err != nil {
				return Image{}, fmt.Errorf("add image %s: layer %d: %w", id.Short(), i, err)
			}
			if err := s.haveBlob(m.Layers[i]); err != nil && s.partialBlob(chain[i]) != Digest(m.Layers[i].Digest.String()) {
				return Image{}, fmt.Errorf("add image %s: layer %d: %w", id.Short(), i, err)
			}
			continue
		}
		_, existed := s.Layer(p.ID())
		if p.unpacked != nil && !p.partial {
			newBlob(p.unpacked.Digest)
		}
		l, err := p.commitLocked(cfg.Created.Time)
		if err != nil {
			return Image{}, err
		}
		if existed != nil {
			added = append(added, l.ID)
		}
	}
	newBlob(id)
	if _, err := s.putBlob(img.RawConfig); err != nil {
		return Image{}, err
	}
	newBlob(FromBytes(img.RawManifest))
	md, err := s.putBlob(img.RawManifest)
	if err != nil {
		return Image{}, err
	}
	idx, err := s.readIndex()
	if err != nil {
		return Image{}, err
	}
	model := indexModel(idx)
	mediaType := m.MediaType
	if mediaType == "" {
		mediaType = types.OCIManifestSchema1
	}
	hash, _ := v1.NewHash(string(md))
	model.add(v1.Descriptor{MediaType: mediaType, Size: int64(len(img.RawManifest)), Digest: hash})
	for _, n := range img.Names {
		model.setName(md, n)
	}
	if err := s.writeIndex(model.index()); err != nil {
		return Image{}, err
	}
	ok = true
	return s.loadImageNamed(md)
}

// rollback removes the layers (top first) and blobs that an AddImage that
// failed had added. It is best effort: what it cannot remove is dangling,
// and prune removes it. The caller holds the lock exclusive.
func (s *Store) rollback(layers, blobs []Digest) {
	for i := len(layers) - 1; i >= 0; i-- {
		s.removeLayer(layers[i])
	}
	for _, d := range blobs {
		os.Remove(s.blobPath(d))
	}
}

// haveBlob checks that the layer blob desc is stored.
func (s *Store) haveBlob(desc v1.Descriptor) error {
	rc, err := s.OpenBlob(Digest(desc.Digest.String()))
	if err != nil {
		return err
	}
	return rc.Close()
}

// loadImageNamed loads the image of manifest md with its names.
func (s *Store) loadImageNamed(md Digest) (Image, error) {
	images, err := s.images()
	if err != nil {
		return Image{}, err
	}
	for _, img := range images {
		if img.Manifest == md {
			return img, nil
		}
	}
	return Image{}, fmt.Errorf("image with manifest %s: %w", md.Short(), ErrNotFound)
}

func diffIDsOf(cfg *v1.ConfigFile) []Digest {
	out := make([]Digest, len(cfg.RootFS.DiffIDs))
	for i, d := range cfg.RootFS.DiffIDs {
		out[i] = Digest(d.String())
	}
	return out
}

// Import makes a one-layer image from a root filesystem tarball (plain,
// gzip or zstd), as docker import does, and names it name (normalized;
// empty for none). source is what the history's comment says it was
// imported from.
func (s *Store) Import(r io.Reader, name, source string) (Image, error) {
	return s.ImportWith(r, name, source, "", nil)
}

// ImportWith is Import with message as the history's comment (docker
// import -m; "" for "Imported from SOURCE") and cfg (when not nil) as the
// image's runtime config (docker import -c).
func (s *Store) ImportWith(r io.Reader, name, source, message string, cfg *v1.Config) (Image, error) {
	if message == "" {
		message = "Imported from " + source
	}
	img, err := s.appendLayer(nil, r, name, v1.History{Comment: message}, cfg)
	if err != nil {
		return Image{}, storageError(s.root, fmt.Errorf("import %s: %w", source, err))
	}
	return img, nil
}

// AppendLayer makes a new image from base (nil for none) and one more
// layer, the tarball r (plain, gzip or zstd, OCI whiteouts), described in
// the history by step (its Created defaults to now), and names it name
// (normalized; empty for none). base's config is kept otherwise.
func (s *Store) AppendLayer(base *Image, r io.Reader, name string, step v1.History) (Image, error) {
	return s.appendLayer(base, r, name, step, nil)
}

// appendLayer is AppendLayer with config (when not nil) as the new
// image's runtime config.
func (s *Store) appendLayer(base *Image, r io.Reader, name string, step v1.History, config *v1.Config) (Image, error) {
	d, err := s.derive(base, name)
	if err != nil {
		return Image{}, fmt.Errorf("append layer: %w", err)
	}
	names, cfg, m, layers, parent := d.names, d.cfg, d.m, d.layers, d.parent
	p, err := s.Prepare(parent)
	if err != nil {
		return Image{}, err
	}
	defer p.Abort()
	u, err := p.ApplyTar(r)
	if err != nil {
		return Image{}, err
	}
	if step.Created.IsZero() {
		step.Created = v1.Time{Time: time.Now().UTC().Truncate(time.Second)}
	}
	cfg.Created = step.Created
	if config != nil {
		cfg.Config = *config
	}
	diffHash, _ := v1.NewHash(string(u.DiffID))
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffHash)
	cfg.History = append(cfg.History, step)
	rawCfg, err := json.Marshal(cfg)
	if err != nil {
		return Image{}, fmt.Errorf("append layer: %w", err)
	}
	cfgHash, _ := v1.NewHash(string(FromBytes(rawCfg)))
	layerHash, _ := v1.NewHash(string(u.Digest))
	m.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(rawCfg)), Digest: cfgHash}
	m.Layers = append(m.Layers, v1.Descriptor{MediaType: layerMediaType(u.Compression), Size: u.Size, Digest: layerHash})
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return Image{}, fmt.Errorf("append layer: %w", err)
	}
	return s.AddImage(NewImage{RawConfig: rawCfg, RawManifest: rawManifest, Layers: append(layers, p), Names: names})
}

// derived is what a new image made on top of a base starts from.
type derived struct {
	names  []string      // the new image's name, normalized (or none)
	cfg    v1.ConfigFile // a copy of base's config (or an empty one)
	m      v1.Manifest   // with base's layers
	layers []*Pending    // nil for each of base's (committed) layers
	parent Digest        // ChainID of base's top layer ("" for none)
}

// derive prepares a new image on base (nil for none) named name ("" for
// none), for AppendLayer and CommitUpper.
func (s *Store) derive(base *Image, name string) (derived, error) {
	d := derived{
		cfg: v1.ConfigFile{Architecture: runtime.GOARCH, OS: "linux", RootFS: v1.RootFS{Type: "layers"}},
		m:   v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1},
	}
	if name != "" {
		n, err := NormalizeName(name)
		if err != nil {
			return d, err
		}
		d.names = append(d.names, n)
	}
	if base == nil {
		return d, nil
	}
	raw, err := json.Marshal(base.Config)
	if err != nil {
		return d, err
	}
	d.cfg = v1.ConfigFile{}
	if err := json.Unmarshal(raw, &d.cfg); err != nil {
		return d, err
	}
	bm, err := s.manifest(base.Manifest)
	if err != nil {
		return d, err
	}
	d.m.Layers = append(d.m.Layers, bm.Layers...)
	d.layers = make([]*Pending, len(base.Layers))
	if len(base.Layers) > 0 {
		d.parent = base.Layers[len(base.Layers)-1]
	}
	return d, nil
}
