package cowcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Image is an image in the store.
type Image struct {
	ID       Digest   // digest of the config
	Manifest Digest   // digest of the manifest
	Names    []string // REPOSITORY:TAG names, sorted; empty for a dangling image
	Created  time.Time
	Config   *v1.ConfigFile
	// Layers are the ChainIDs of its layers, bottom first.
	Layers []Digest
	// Size is the sum of its layers' sizes (docker images SIZE).
	Size int64
}

// ErrAmbiguous is returned (wrapped) for a short id that matches more than
// one image.
var ErrAmbiguous = errors.New("ambiguous")

var (
	repoRE = lazyRegexp(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = lazyRegexp(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	hexRE  = lazyRegexp(`^(sha256:)?[0-9a-f]{1,64}$`)
)

// NormalizeName checks an image name and returns it as REPOSITORY:TAG,
// adding ":latest" when no tag is given ("busybox" -> "busybox:latest").
func NormalizeName(ref string) (string, error) {
	repo, tag := ref, "latest"
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	if !repoRE().MatchString(repo) || len(repo) > 255 {
		return "", fmt.Errorf("invalid image name %q: want lowercase letters, digits and separators, as docker", ref)
	}
	if !tagRE().MatchString(tag) {
		return "", fmt.Errorf("invalid tag in %q", ref)
	}
	return repo + ":" + tag, nil
}

// SplitName splits REPOSITORY:TAG.
func SplitName(name string) (repo, tag string) {
	i := strings.LastIndex(name, ":")
	if i < 0 || i < strings.LastIndex(name, "/") {
		return name, ""
	}
	return name[:i], name[i+1:]
}

// Images returns every image, newest first.
func (s *Store) Images() ([]Image, error) {
	release, err := s.rlock()
	if err != nil {
		return nil, err
	}
	defer release()
	return s.images()
}

func (s *Store) images() ([]Image, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	byManifest := map[string]*Image{}
	var out []*Image
	for _, desc := range idx.Manifests {
		img := byManifest[desc.Digest.String()]
		if img == nil {
			loaded, err := s.loadImage(Digest(desc.Digest.String()))
			if err != nil {
				return nil, err
			}
			img = &loaded
			byManifest[desc.Digest.String()] = img
			out = append(out, img)
		}
		if n := desc.Annotations[refNameAnnotation]; n != "" {
			img.Names = append(img.Names, n)
		}
	}
	res := make([]Image, len(out))
	for i, img := range out {
		sort.Strings(img.Names)
		res[i] = *img
	}
	sort.SliceStable(res, func(i, j int) bool { return res[i].Created.After(res[j].Created) })
	return res, nil
}

// loadImage reads an image from its manifest.
func (s *Store) loadImage(md Digest) (Image, error) {
	m, err := s.manifest(md)
	if err != nil {
		return Image{}, err
	}
	id := Digest(m.Config.Digest.String())
	b, err := s.readBlob(id)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", id.Short(), err)
	}
	var cfg v1.ConfigFile
	if err := json.Unmarshal(b, &cfg); err != nil {
		return Image{}, fmt.Errorf("image %s: config: %w", id.Short(), err)
	}
	img := Image{ID: id, Manifest: md, Config: &cfg, Created: cfg.Created.Time}
	diffIDs := make([]Digest, len(cfg.RootFS.DiffIDs))
	for i, d := range cfg.RootFS.DiffIDs {
		diffIDs[i] = Digest(d.String())
	}
	img.Layers = ChainIDs(diffIDs)
	for _, l := range img.Layers {
		layer, err := s.Layer(l)
		if err != nil {
			return Image{}, fmt.Errorf("image %s: %w", id.Short(), err)
		}
		img.Size += layer.Size
	}
	return img, nil
}

// lazyRegexp compiles expr on first use: every unionfuse process (the
// FUSE daemon, a container's init) links this package, and compiling at
// start-up would cost each of them.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// Image finds an image by name (REPOSITORY[:TAG]), by id
// ("sha256:<hex>" or hex) or by a unique prefix of its id.
func (s *Store) Image(ref string) (Image, error) {
	release, err := s.rlock()
	if err != nil {
		return Image{}, err
	}
	defer release()
	return s.resolve(ref)
}

func (s *Store) resolve(ref string) (Image, error) {
	images, err := s.images()
	if err != nil {
		return Image{}, err
	}
	if name, err := NormalizeName(ref); err == nil {
		for _, img := range images {
			for _, n := range img.Names {
				if n == name {
					return img, nil
				}
			}
		}
	}
	if hexRE().MatchString(ref) {
		prefix := strings.TrimPrefix(ref, "sha256:")
		var found []Image
		for _, img := range images {
			if strings.HasPrefix(img.ID.Hex(), prefix) && !containsID(found, img.ID) {
				found = append(found, img)
			}
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
		default:
			return Image{}, fmt.Errorf("image %q: %w: matches %d images", ref, ErrAmbiguous, len(found))
		}
	}
	return Image{}, fmt.Errorf("image %q: %w", ref, ErrNotFound)
}

func containsID(images []Image, id Digest) bool {
	for _, img := range images {
		if img.ID == id {
			return true
		}
	}
	return false
}

// LayerDirs returns the diff directories of an image's layers, top first
// (the order of overlay's lowerdir=).
func (s *Store) LayerDirs(img Image) []string {
	out := make([]string, len(img.Layers))
	for i, l := range img.Layers {
		out[len(img.Layers)-1-i] = s.LayerDir(l)
	}
	return out
}

// Tag gives the image src the name dst (taking it from any other image).
func (s *Store) Tag(src, dst string) error {
	name, err := NormalizeName(dst)
	if err != nil {
		return err
	}
	release, err := s.wlock()
	if err != nil {
		return err
	}
	defer release()
	img, err := s.resolve(src)
	if err != nil {
		return fmt.Errorf("tag: %w", err)
	}
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	m := indexModel(idx)
	m.setName(img.Manifest, name)
	return s.writeIndex(m.index())
}

// imageIndex is images/index.json as a map: manifests in order, each
// with its descriptor and names. In the file a manifest has one entry per
// name, or one entry without a name when it has none (a dangling image).
type imageIndex struct {
	order []Digest
	desc  map[Digest]v1.Descriptor
	names map[Digest][]string
}

func indexModel(idx *v1.IndexManifest) *imageIndex {
	m := &imageIndex{desc: map[Digest]v1.Descriptor{}, names: map[Digest][]string{}}
	for _, d := range idx.Manifests {
		md := Digest(d.Digest.String())
		name := d.Annotations[refNameAnnotation]
		if _, ok := m.desc[md]; !ok {
			m.order = append(m.order, md)
			d.Annotations = nil
			m.desc[md] = d
		}
		if name != "" {
			m.names[md] = append(m.names[md], name)
		}
	}
	return m
}

// setName gives name to md, taking it from any other manifest.
func (m *imageIndex) setName(md Digest, name string) {
	for d, names := range m.names {
		m.names[d] = without(names, name)
	}
	m.names[md] = append(m.names[md], name)
}

// add adds a manifest (without names) unless it is there.
func (m *imageIndex) add(desc v1.Descriptor) {
	md := Digest(desc.Digest.String())
	if _, ok := m.desc[md]; ok {
		return
	}
	desc.Annotations = nil
	m.order = append(m.order, md)
	m.desc[md] = desc
}

// remove drops a manifest and its names.
func (m *imageIndex) remove(md Digest) {
	delete(m.desc, md)
	delete(m.names, md)
	var order []Digest
	for _, d := range m.order {
		if d != md {
			order = append(order, d)
		}
	}
	m.order = order
}

func (m *imageIndex) index() *v1.IndexManifest {
	idx := &v1.IndexManifest{SchemaVersion: 2, MediaType: "application/vnd.oci.image.index.v1+json", Manifests: []v1.Descriptor{}}
	for _, md := range m.order {
		names := m.names[md]
		sort.Strings(names)
		if len(names) == 0 {
			idx.Manifests = append(idx.Manifests, m.desc[md])
		}
		for _, n := range names {
			d := m.desc[md]
			d.Annotations = map[string]string{refNameAnnotation: n}
			idx.Manifests = append(idx.Manifests, d)
		}
	}
	return idx
}

func without(names []string, name string) []string {
	var out []string
	for _, n := range names {
		if n != name {
			out = append(out, n)
		}
	}
	return out
}

// GraphDriverData returns an image's directories as docker inspect prints
// them under GraphDriver.Data: UpperDir is the top layer's diff, LowerDir
// the diffs of the layers below, top first and colon-separated (absent for
// a one-layer image), MergedDir and WorkDir the top layer's merged and work.
func (s *Store) GraphDriverData(img Image) map[string]string {
	if len(img.Layers) == 0 {
		return map[string]string{}
	}
	top := s.path(layersDir, img.Layers[len(img.Layers)-1].Hex())
	data := map[string]string{
		"UpperDir":  filepath.Join(top, "diff"),
		"MergedDir": filepath.Join(top, "merged"),
		"WorkDir":   filepath.Join(top, "work"),
	}
	if dirs := s.LayerDirs(img); len(dirs) > 1 {
		data["LowerDir"] = strings.Join(dirs[1:], ":")
	}
	if p := s.partialSummary(img); p != "" {
		// Layers pulled lazily whose data is not all local yet.
		data["PartialLayers"] = p
	}
	return data
}

// Intermediate returns the ids of the images among images that have no
// name and are the parent of another image: the steps of a build, which
// the build cache reuses. As docker's, `images` hides them (unless -a) and
// prune keeps them while their child exists.
func Intermediate(images []Image) map[Digest]bool {
	out := map[Digest]bool{}
	for _, a := range images {
		if len(a.Names) > 0 || a.Config == nil {
			continue
		}
		for _, b := range images {
			if b.ID != a.ID && isParent(a, b) {
				out[a.ID] = true
				break
			}
		}
	}
	return out
}

// isParent reports whether child is parent plus more steps: its layers
// and history start with parent's.
func isParent(parent, child Image) bool {
	if child.Config == nil || len(child.Config.History) <= len(parent.Config.History) ||
		len(child.Layers) < len(parent.Layers) {
		return false
	}
	for i, l := range parent.Layers {
		if child.Layers[i] != l {
			return false
		}
	}
	for i, h := range parent.Config.History {
		c := child.Config.History[i]
		if c.CreatedBy != h.CreatedBy || !c.Created.Equal(h.Created.Time) || c.EmptyLayer != h.EmptyLayer {
			return false
		}
	}
	return true
}
