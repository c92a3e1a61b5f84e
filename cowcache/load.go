package cowcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Limits on the small files of an image archive.
const (
	maxManifestSize = 4 << 20  // an index or manifest
	maxConfigSize   = 16 << 20 // an image config
)

// Annotations that name an image in an OCI image layout.
const (
	// containerdNameAnnotation is the full name docker save and
	// containerd write ("docker.io/library/busybox:1.35").
	containerdNameAnnotation = "io.containerd.image.name"
)

// Load adds every image of an image archive to the store, as docker load
// does, and returns them in the archive's order. path is a docker-archive
// tarball (docker save's format: manifest.json, configs, layer tarballs),
// or an OCI image layout, as a directory or a tarball. Layers may be
// plain, gzip or zstd; all of an image's layers are kept, with their
// digests, so that Save writes back what was loaded. Every blob is checked
// against its digest. Each image is added atomically (see AddImage); on an
// error the images added before it stay.
func (s *Store) Load(path string) ([]Image, error) {
	images, err := s.load(path)
	return images, storageError(s.root, err)
}

func (s *Store) load(path string) ([]Image, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	switch m := fi.Mode(); {
	case m.IsDir():
		src, err := openDirSource(path)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		defer src.Close()
		return s.loadFrom(src, path)
	case m.IsRegular(), m&os.ModeNamedPipe != 0:
	default:
		return nil, fmt.Errorf("load %s: not a file, a FIFO or a directory", path)
	}
	f, err := os.Open(path) // a FIFO waits for its writer, as docker load -i does
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer f.Close()
	if fi.Mode()&os.ModeNamedPipe != 0 {
		return s.loadReader(f, path) // a stream: copied to be read in any order
	}
	return s.loadTarFile(f, path)
}

// LoadReader is Load of a tarball read from r (standard input): it is
// first copied into the store's tmp/, where it can be read in any order.
func (s *Store) LoadReader(r io.Reader, what string) ([]Image, error) {
	images, err := s.loadReader(r, what)
	return images, storageError(s.root, err)
}

func (s *Store) loadReader(r io.Reader, what string) ([]Image, error) {
	f, done, err := s.tempFile("archive")
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", what, err)
	}
	defer done()
	if _, err := io.Copy(f, r); err != nil {
		return nil, fmt.Errorf("load %s: %w", what, err)
	}
	return s.loadTarFile(f, what)
}

func (s *Store) loadTarFile(f *os.File, what string) ([]Image, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("load %s: %w", what, err)
	}
	src, err := openTarSource(f)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", what, err)
	}
	return s.loadFrom(src, what)
}

// loadFrom tells the formats apart (an OCI layout has oci-layout and
// index.json; docker save since Docker 25 writes both formats, and the
// layout is preferred because it keeps manifest digests) and loads.
func (s *Store) loadFrom(src source, what string) ([]Image, error) {
	var todo []loadItem
	var err error
	switch {
	case src.has("oci-layout") && src.has("index.json"):
		todo, err = ociItems(src)
	case src.has("manifest.json"):
		todo, err = dockerItems(src)
	default:
		err = errors.New("neither an OCI image layout (oci-layout, index.json) nor a docker-archive (manifest.json)")
	}
	if err == nil && len(todo) == 0 {
		err = errors.New("no images in the archive")
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", what, err)
	}
	var out []Image
	for _, it := range todo {
		img, err := s.loadItem(src, it)
		if err != nil {
			return out, fmt.Errorf("load %s: %w", what, err)
		}
		out = append(out, img)
	}
	return out, nil
}

// loadItem is one image to load: its config, its manifest (nil for a
// docker-archive, which has none: one is made), where its layers are, and
// its names.
type loadItem struct {
	rawConfig   []byte
	rawManifest []byte
	layerFiles  []string        // file of each layer, bottom first
	layerDescs  []v1.Descriptor // from the manifest; nil for a docker-archive
	names       []string
}

// ociItems lists the images of an OCI image layout. An entry that is an
// image index (a multi-platform image) stands for its manifest for
// linux/GOARCH, the one docker load would take.
func ociItems(src source) ([]loadItem, error) {
	b, err := readSmall(src, "index.json", maxManifestSize)
	if err != nil {
		return nil, err
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	var out []loadItem
	seen := map[Digest]int{}
	for _, desc := range idx.Manifests {
		md, err := ParseDigest(desc.Digest.String())
		if err != nil {
			return nil, fmt.Errorf("index.json: %w", err)
		}
		if desc.MediaType.IsIndex() {
			if md, err = pickPlatform(src, md); err != nil {
				return nil, err
			}
		} else if !desc.MediaType.IsImage() {
			return nil, fmt.Errorf("index.json: manifest %s: unsupported media type %q", md.Short(), desc.MediaType)
		}
		names := annotatedNames(desc.Annotations)
		if i, ok := seen[md]; ok {
			out[i].names = append(out[i].names, names...)
			continue
		}
		it, err := ociItem(src, md)
		if err != nil {
			return nil, err
		}
		it.names = names
		seen[md] = len(out)
		out = append(out, it)
	}
	return out, nil
}

// pickPlatform returns the manifest of index md for this machine.
func pickPlatform(src source, md Digest) (Digest, error) {
	b, err := readBlobChecked(src, md, maxManifestSize)
	if err != nil {
		return "", err
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return "", fmt.Errorf("index %s: %w", md.Short(), err)
	}
	for _, d := range idx.Manifests {
		p := d.Platform
		if d.MediaType.IsImage() && p != nil && p.OS == "linux" && p.Architecture == runtime.GOARCH &&
			src.has(blobName(Digest(d.Digest.String()))) {
			return ParseDigest(d.Digest.String())
		}
	}
	return "", fmt.Errorf("index %s: no image for linux/%s in the archive", md.Short(), runtime.GOARCH)
}

func ociItem(src source, md Digest) (loadItem, error) {
	raw, err := readBlobChecked(src, md, maxManifestSize)
	if err != nil {
		return loadItem{}, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return loadItem{}, fmt.Errorf("manifest %s: %w", md.Short(), err)
	}
	cd, err := ParseDigest(m.Config.Digest.String())
	if err != nil {
		return loadItem{}, fmt.Errorf("manifest %s: config: %w", md.Short(), err)
	}
	cfg, err := readBlobChecked(src, cd, maxConfigSize)
	if err != nil {
		return loadItem{}, err
	}
	it := loadItem{rawConfig: cfg, rawManifest: raw, layerDescs: m.Layers}
	for _, l := range m.Layers {
		ld, err := ParseDigest(l.Digest.String())
		if err != nil {
			return loadItem{}, fmt.Errorf("manifest %s: layer: %w", md.Short(), err)
		}
		it.layerFiles = append(it.layerFiles, blobName(ld))
	}
	return it, nil
}

// dockerItems lists the images of a docker-archive's manifest.json.
func dockerItems(src source) ([]loadItem, error) {
	b, err := readSmall(src, "manifest.json", maxManifestSize)
	if err != nil {
		return nil, err
	}
	var m tarball.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	var out []loadItem
	for _, d := range m {
		cfg, err := readSmall(src, d.Config, maxConfigSize)
		if err != nil {
			return nil, fmt.Errorf("manifest.json: config: %w", err)
		}
		var names []string
		for _, t := range d.RepoTags {
			// docker load refuses a name it cannot parse.
			n, err := familiarName(t)
			if err != nil {
				return nil, fmt.Errorf("manifest.json: RepoTags: %w", err)
			}
			names = append(names, n)
		}
		out = append(out, loadItem{rawConfig: cfg, layerFiles: d.Layers, names: names})
	}
	return out, nil
}

// annotatedNames returns the names an OCI index entry gives its image:
// io.containerd.image.name, else org.opencontainers.image.ref.name when
// it is a whole name (REPOSITORY:TAG); a bare tag names no repository.
func annotatedNames(a map[string]string) []string {
	for _, k := range []string{containerdNameAnnotation, refNameAnnotation} {
		v := a[k]
		if k == refNameAnnotation && !strings.Contains(v, ":") {
			continue
		}
		if n, err := familiarName(v); err == nil {
			return []string{n}
		}
	}
	return nil
}

// familiarName normalizes a name as docker prints it: docker.io/library/
// and docker.io/ are dropped.
func familiarName(ref string) (string, error) {
	ref = strings.TrimPrefix(ref, "docker.io/")
	ref = strings.TrimPrefix(ref, "library/")
	return NormalizeName(ref)
}

// loadItem unpacks the layers of one image that the store does not hold
// yet and adds the image.
func (s *Store) loadItem(src source, it loadItem) (Image, error) {
	var cfg v1.ConfigFile
	if err := json.Unmarshal(it.rawConfig, &cfg); err != nil {
		return Image{}, fmt.Errorf("config: %w", err)
	}
	id := FromBytes(it.rawConfig)
	if len(cfg.RootFS.DiffIDs) != len(it.layerFiles) {
		return Image{}, fmt.Errorf("image %s: config has %d layers, the archive %d", id.Short(), len(cfg.RootFS.DiffIDs), len(it.layerFiles))
	}
	if it.rawManifest == nil {
		if md, ok := s.manifestOfConfig(id); ok {
			raw, err := s.readBlob(md)
			if err != nil {
				return Image{}, err
			}
			it.rawManifest = raw // the image is stored: only its names are new
			var m v1.Manifest
			if err := json.Unmarshal(raw, &m); err != nil {
				return Image{}, fmt.Errorf("manifest %s: %w", md.Short(), err)
			}
			it.layerDescs = m.Layers
		}
	}
	chain := ChainIDs(diffIDsOf(&cfg))
	pending := make([]*Pending, len(it.layerFiles))
	descs := make([]v1.Descriptor, len(it.layerFiles))
	abort := func() {
		for _, p := range pending {
			if p != nil {
				p.Abort()
			}
		}
	}
	for i, file := range it.layerFiles {
		if it.layerDescs != nil {
			descs[i] = it.layerDescs[i]
			if s.haveLayerAndBlob(chain[i], Digest(descs[i].Digest.String())) {
				continue
			}
		} else if _, err := s.Layer(chain[i]); err == nil {
			d, size, err := hashFile(src, file)
			if err != nil {
				abort()
				return Image{}, fmt.Errorf("image %s: layer %d: %w", id.Short(), i, err)
			}
			descs[i] = layerDesc(d, size, layerMediaType(compressionOf(src, file)))
			if s.haveLayerAndBlob(chain[i], d) {
				continue
			}
		}
		p, u, err := s.unpackFrom(src, file, parentOf(chain, i), descs[i].Size)
		if err != nil {
			abort()
			return Image{}, fmt.Errorf("image %s: layer %d: %w", id.Short(), i, err)
		}
		pending[i] = p
		if it.layerDescs == nil {
			descs[i] = layerDesc(u.Digest, u.Size, layerMediaType(u.Compression))
		}
	}
	if it.rawManifest == nil {
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Layers: descs,
			Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(it.rawConfig)), Digest: mustHash(id)}}
		raw, err := json.Marshal(m)
		if err != nil {
			abort()
			return Image{}, fmt.Errorf("image %s: manifest: %w", id.Short(), err)
		}
		it.rawManifest = raw
	}
	return s.AddImage(NewImage{RawConfig: it.rawConfig, RawManifest: it.rawManifest, Layers: pending, Names: it.names})
}

// unpackFrom prepares a layer on parent from a file of src; size is the
// size the manifest gives (0: unknown). A file longer than that is refused.
func (s *Store) unpackFrom(src source, file string, parent Digest, size int64) (*Pending, Unpacked, error) {
	rc, n, err := src.open(file)
	if err != nil {
		return nil, Unpacked{}, err
	}
	defer rc.Close()
	if size > 0 && n != size {
		return nil, Unpacked{}, fmt.Errorf("%s: %d bytes, the manifest says %d", file, n, size)
	}
	p, err := s.Prepare(parent)
	if err != nil {
		return nil, Unpacked{}, err
	}
	u, err := p.ApplyTar(rc)
	if err != nil {
		p.Abort()
		return nil, Unpacked{}, err
	}
	return p, u, nil
}

// compressionOf detects how a file of src is compressed.
func compressionOf(src source, file string) Compression {
	rc, _, err := src.open(file)
	if err != nil {
		return Uncompressed
	}
	defer rc.Close()
	dr, c, err := decompress(rc)
	if err == nil {
		dr.Close()
	}
	return c
}

func parentOf(chain []Digest, i int) Digest {
	if i == 0 {
		return ""
	}
	return chain[i-1]
}

func layerDesc(d Digest, size int64, mt types.MediaType) v1.Descriptor {
	return v1.Descriptor{MediaType: mt, Size: size, Digest: mustHash(d)}
}

// mustHash converts a digest known to be valid.
func mustHash(d Digest) v1.Hash {
	h, err := v1.NewHash(string(d))
	if err != nil {
		panic(fmt.Sprintf("digest %q: %v", d, err))
	}
	return h
}

// haveLayerAndBlob reports whether the layer with ChainID id is committed
// and its tarball d is stored: then it need not be unpacked again.
func (s *Store) haveLayerAndBlob(id, d Digest) bool {
	if _, err := s.Layer(id); err != nil {
		return false
	}
	_, err := os.Stat(s.blobPath(d))
	return err == nil || s.partialBlob(id) == d
}

// manifestOfConfig returns the manifest of a stored image with config id.
func (s *Store) manifestOfConfig(id Digest) (Digest, bool) {
	images, err := s.Images()
	if err != nil {
		return "", false
	}
	for _, img := range images {
		if img.ID == id {
			return img.Manifest, true
		}
	}
	return "", false
}
