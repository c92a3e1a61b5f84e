package cowcache

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/unionfuse/unionfuse/internal/atomicfile"
)

// ArchiveFormat is the format Save writes.
type ArchiveFormat string

// The formats Save writes (Load reads both, and tells them apart itself).
const (
	// DockerArchive is docker save's format: manifest.json (RepoTags,
	// the config and layer files), the configs and the layer tarballs.
	// It has no image manifests, so it keeps image ids and DiffIDs but
	// not manifest digests.
	DockerArchive ArchiveFormat = "docker-archive"
	// OCIArchive is an OCI image layout (oci-layout, index.json,
	// blobs/sha256/), as a tarball or a directory. It keeps every digest.
	OCIArchive ArchiveFormat = "oci"
)

// ParseArchiveFormat checks a format name.
func ParseArchiveFormat(s string) (ArchiveFormat, error) {
	switch f := ArchiveFormat(s); f {
	case DockerArchive, OCIArchive:
		return f, nil
	}
	return "", fmt.Errorf("archive format %q: want %s or %s", s, DockerArchive, OCIArchive)
}

// savedImage is one image to save and the names to save it under (none
// when it was given by id).
type savedImage struct {
	img   v1.Image
	id    Digest
	names []string
}

// Save writes the images refs (names or ids) to w in format f, as docker
// save does: an image given by name is saved under that name, one given
// by id without names. The blobs are the ones the store holds, so the
// image ids, DiffIDs and (in the OCI format) manifest digests are those
// the images were loaded or built with. The store's lock is held shared
// while writing.
func (s *Store) Save(w io.Writer, refs []string, f ArchiveFormat) error {
	return s.withSaved(refs, func(images []*savedImage) error {
		switch f {
		case DockerArchive:
			return writeDockerArchive(w, images)
		case OCIArchive:
			return s.writeOCITar(w, images)
		}
		return fmt.Errorf("unknown format %q", f)
	})
}

// withSaved resolves refs and runs fn on them under the store's lock
// (shared), so that no blob goes away while fn writes it.
func (s *Store) withSaved(refs []string, fn func([]*savedImage) error) error {
	release, err := s.rlock()
	if err != nil {
		return err
	}
	defer release()
	images, err := s.savedImages(refs)
	if err == nil {
		err = fn(images)
	}
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// SaveFile is Save to the file path, written under a temporary name
// beside it, synced and renamed into place: path holds a whole archive or
// is as it was. As docker, only a missing path or a regular file is
// written: a device node, a FIFO, a symbolic link or a directory there is
// refused (see atomicfile.WriteOutput), not replaced.
func (s *Store) SaveFile(path string, refs []string, f ArchiveFormat) error {
	return atomicfile.WriteOutput(path, 0o644, func(w io.Writer) error { return s.Save(w, refs, f) })
}

// SaveLayout writes the images refs to the OCI image layout directory dir
// (created if needed; images are added to a layout already there). The
// layout is made in the store's tmp/ and then copied into dir through an
// os.Root, so that no symbolic link planted in dir leads a write out of
// it.
func (s *Store) SaveLayout(dir string, refs []string) error {
	return s.withSaved(refs, func(images []*savedImage) error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			return err
		}
		defer root.Close()
		tmp, done, err := s.tempDir("save")
		if err != nil {
			return err
		}
		defer done()
		// The index of a layout already there, to add the images to.
		idx, err := root.ReadFile(layoutIndex)
		if err == nil {
			err = os.WriteFile(filepath.Join(tmp, layoutIndex), idx, 0o644)
		} else if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		if err := writeLayout(tmp, images); err != nil {
			return err
		}
		if err := copyLayout(root, tmp); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		return nil
	})
}

// layoutIndex is an OCI layout's index file, written last.
const layoutIndex = "index.json"

// copyLayout copies the layout made in tmp into root: the blobs it does
// not hold yet (they are named by their digest), then oci-layout and the
// index, each written under a temporary name and renamed.
func copyLayout(root *os.Root, tmp string) error {
	var files []string
	err := filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == tmp {
			return err
		}
		rel, _ := filepath.Rel(tmp, p)
		if d.IsDir() {
			return root.MkdirAll(rel, 0o755)
		}
		if rel != layoutIndex {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, rel := range append(files, layoutIndex) {
		if strings.HasPrefix(rel, "blobs"+string(filepath.Separator)) {
			if fi, err := root.Lstat(rel); err == nil && fi.Mode().IsRegular() {
				continue
			}
		}
		if err := copyInto(root, rel, filepath.Join(tmp, rel)); err != nil {
			return err
		}
	}
	return nil
}

// copyInto copies the file src to name below root, through a temporary
// name renamed over name.
func copyInto(root *os.Root, name, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := name + ".tmp-" + randomName(8)
	out, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		root.Remove(tmp)
	}
	return err
}

// savedImages resolves refs, each image once with all names it was asked
// by. The caller holds the lock.
func (s *Store) savedImages(refs []string) ([]*savedImage, error) {
	if len(refs) == 0 {
		return nil, errors.New("no images given")
	}
	var out []*savedImage
	byID := map[Digest]*savedImage{}
	for _, ref := range refs {
		img, err := s.resolve(ref)
		if err != nil {
			return nil, err
		}
		si := byID[img.ID]
		if si == nil {
			core, err := s.imageCore(img)
			if err != nil {
				return nil, err
			}
			v1img, err := partial.CompressedToImage(core)
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", img.ID.Short(), err)
			}
			si = &savedImage{img: v1img, id: img.ID}
			byID[img.ID] = si
			out = append(out, si)
		}
		if n, err := NormalizeName(ref); err == nil && contains(img.Names, n) && !contains(si.names, n) {
			si.names = append(si.names, n)
		}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// writeDockerArchive writes images with go-containerregistry's tarball
// writer, which names layer files by digest and configs sha256:<hex>.
func writeDockerArchive(w io.Writer, images []*savedImage) error {
	refs := map[name.Reference]v1.Image{}
	for _, si := range images {
		for _, n := range si.names {
			tag, err := name.NewTag(n)
			if err != nil {
				return fmt.Errorf("name %s: %w", n, err)
			}
			refs[tag] = si.img
		}
		if len(si.names) == 0 {
			d, err := name.NewDigest("unionfuse/image@" + string(si.id))
			if err != nil {
				return err
			}
			refs[d] = si.img
		}
	}
	return tarball.MultiRefWrite(refs, w)
}

// writeLayout writes images to an OCI layout with go-containerregistry's
// layout package: one index entry per name, annotated as docker save and
// skopeo annotate them.
func writeLayout(dir string, images []*savedImage) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return err
		}
	}
	for _, si := range images {
		if len(si.names) == 0 {
			if err := p.AppendImage(si.img); err != nil {
				return err
			}
		}
		for _, n := range si.names {
			a := map[string]string{refNameAnnotation: n, containerdNameAnnotation: fullName(n)}
			if err := p.AppendImage(si.img, layout.WithAnnotations(a)); err != nil {
				return err
			}
		}
	}
	return nil
}

// fullName returns the name with docker's implied registry and library/
// ("busybox:1.35" -> "docker.io/library/busybox:1.35").
func fullName(n string) string {
	first, _, found := strings.Cut(n, "/")
	if found && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return n
	}
	if !found {
		return "docker.io/library/" + n
	}
	return "docker.io/" + n
}

// writeOCITar writes an OCI layout in a temporary directory of the store
// and then streams it to w as a tarball.
func (s *Store) writeOCITar(w io.Writer, images []*savedImage) error {
	dir, done, err := s.tempDir("save")
	if err != nil {
		return err
	}
	defer done()
	if err := writeLayout(dir, images); err != nil {
		return err
	}
	return tarDir(w, dir)
}

// tarDir writes the regular files and directories below dir to w, sorted
// (filepath.WalkDir's order), with fixed owners and times.
func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Name: rel + "/", Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatPAX})
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Typeflag: tar.TypeReg, Mode: 0o644, Size: fi.Size(), Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// imageCore is an image of the store as go-containerregistry's
// partial.CompressedImageCore: its config, manifest and layer blobs exactly
// as stored.
type imageCore struct {
	s           *Store
	rawConfig   []byte
	rawManifest []byte
	manifest    v1.Manifest
}

var _ partial.CompressedImageCore = (*imageCore)(nil)

func (s *Store) imageCore(img Image) (*imageCore, error) {
	rawManifest, err := s.readBlob(img.Manifest)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.ID.Short(), err)
	}
	rawConfig, err := s.readBlob(img.ID)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.ID.Short(), err)
	}
	c := &imageCore{s: s, rawConfig: rawConfig, rawManifest: rawManifest}
	if err := json.Unmarshal(rawManifest, &c.manifest); err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", img.ID.Short(), err)
	}
	for i, l := range c.manifest.Layers {
		if _, err := os.Stat(s.blobPath(Digest(l.Digest.String()))); err != nil {
			if i < len(img.Layers) && s.partialBlob(img.Layers[i]) == Digest(l.Digest.String()) {
				return nil, fmt.Errorf("image %s: layer %s was pulled lazily and is not complete yet (pull the image with --lazy=false)", img.ID.Short(), l.Digest)
			}
			return nil, fmt.Errorf("image %s: layer tarball %s is not stored: %w", img.ID.Short(), l.Digest, err)
		}
	}
	return c, nil
}

// RawConfigFile returns the config as stored.
func (c *imageCore) RawConfigFile() ([]byte, error) { return c.rawConfig, nil }

// MediaType returns the manifest's media type.
func (c *imageCore) MediaType() (types.MediaType, error) {
	if c.manifest.MediaType == "" {
		return types.OCIManifestSchema1, nil
	}
	return c.manifest.MediaType, nil
}

// RawManifest returns the manifest as stored.
func (c *imageCore) RawManifest() ([]byte, error) { return c.rawManifest, nil }

// LayerByDigest returns a layer blob of the image.
func (c *imageCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range c.manifest.Layers {
		if l.Digest == h {
			return &blobLayer{s: c.s, desc: l}, nil
		}
	}
	return nil, fmt.Errorf("blob %s: %w", h, ErrNotFound)
}

// blobLayer is a stored blob as a partial.CompressedLayer.
type blobLayer struct {
	s    *Store
	desc v1.Descriptor
}

// Digest returns the blob's digest.
func (b *blobLayer) Digest() (v1.Hash, error) { return b.desc.Digest, nil }

// Compressed opens the blob as stored (compressed or not).
func (b *blobLayer) Compressed() (io.ReadCloser, error) {
	return b.s.OpenBlob(Digest(b.desc.Digest.String()))
}

// Size returns the blob's size.
func (b *blobLayer) Size() (int64, error) { return b.desc.Size, nil }

// MediaType returns the blob's media type.
func (b *blobLayer) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }
