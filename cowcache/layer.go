package cowcache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/unionfuse/unionfuse/internal/atomicfile"
)

// ErrNotFound is returned (wrapped) for layers and images that do not exist.
var ErrNotFound = errors.New("not found")

// Layer is a committed layer: what its committed marker records.
type Layer struct {
	ID      Digest    `json:"id"`               // ChainID
	DiffID  Digest    `json:"diff_id"`          // digest of its uncompressed tarball
	Parent  Digest    `json:"parent,omitempty"` // ChainID of the layer below
	Size    int64     `json:"size"`             // bytes of its files (see DirSize)
	Created time.Time `json:"created"`
}

// Pending is a layer being prepared (see the Store's state machine). It is
// not safe for concurrent use.
type Pending struct {
	s      *Store
	name   string   // tmp/<name>
	lock   *os.File // tmp/<name>.lock, held exclusive
	parent Digest
	// unpacked is set by ApplyTar; its DiffID is then the layer's.
	unpacked *Unpacked
	diffID   Digest // set by finish
	size     int64  // set by finish
	finished bool   // finish succeeded
	done     bool
	// partial is set by ApplyPartial: the layer has no tarball yet.
	partial bool
}

// Prepare starts a pending layer on top of parent ("" for a bottom layer),
// which must be committed by the time this layer is. Fill Dir() and then
// Commit or Abort.
func (s *Store) Prepare(parent Digest) (*Pending, error) {
	name, lf, err := s.newOwnerLock()
	if err != nil {
		return nil, fmt.Errorf("prepare layer: %w", err)
	}
	p := &Pending{s: s, name: name, lock: lf, parent: parent}
	for _, d := range []string{"", "diff", "work"} {
		if err := os.Mkdir(filepath.Join(p.path(), d), 0o755); err != nil {
			p.Abort()
			return nil, fmt.Errorf("prepare layer: %w", err)
		}
	}
	return p, nil
}

func (p *Pending) path() string { return p.s.path(tmpDir, p.name) }

// Dir returns the directory to fill: the layer's diff/ while pending.
func (p *Pending) Dir() string { return filepath.Join(p.path(), "diff") }

// WorkDir returns an empty directory on the same filesystem as Dir, for
// use as an overlay work directory while Dir is an upper layer.
func (p *Pending) WorkDir() string { return filepath.Join(p.path(), "work") }

// ApplyTar unpacks a layer tarball (plain, gzip or zstd, OCI whiteouts)
// into Dir, which must be empty, and records its DiffID for Commit. A
// refused entry is reported as an *EntryError.
func (p *Pending) ApplyTar(r io.Reader) (Unpacked, error) {
	if p.unpacked != nil {
		return Unpacked{}, errors.New("apply layer: a tarball was applied already")
	}
	blob, err := os.Create(p.blobPath())
	if err != nil {
		return Unpacked{}, fmt.Errorf("apply layer: %w", err)
	}
	defer blob.Close()
	u, err := p.unpack(io.TeeReader(r, blob))
	if err != nil {
		return Unpacked{}, err
	}
	if err := blob.Sync(); err != nil {
		return Unpacked{}, fmt.Errorf("apply layer: %w", err)
	}
	p.unpacked = &u
	return u, nil
}

// ApplyDownload is ApplyTar of a complete download, whose file becomes
// the layer's tarball by a hard link instead of a copy (the download area
// is on the store's filesystem, and the download was synced when it was
// finished). A download removed meanwhile is copied as it is read.
// watch, when not nil, wraps the reader the download is read through (to
// show progress).
func (p *Pending) ApplyDownload(dl *Download, watch func(io.Reader) io.Reader) (Unpacked, error) {
	if p.unpacked != nil {
		return Unpacked{}, errors.New("apply layer: a tarball was applied already")
	}
	rs, _, err := dl.Reader()
	if err != nil {
		return Unpacked{}, fmt.Errorf("apply layer: %w", err)
	}
	var r io.Reader = rs
	if watch != nil {
		r = watch(r)
	}
	if err := os.Link(dl.completePath(), p.blobPath()); err != nil || !samePath(dl.done, p.blobPath()) {
		os.Remove(p.blobPath())
		return p.ApplyTar(r)
	}
	u, err := p.unpack(r)
	if err != nil {
		return Unpacked{}, err
	}
	p.unpacked = &u
	return u, nil
}

// unpack unpacks the tarball r into Dir with the store's rules.
func (p *Pending) unpack(r io.Reader) (Unpacked, error) {
	return unpackLayer(p.Dir(), r, p.unpackOptions())
}

// unpackOptions are the store's rules for unpacking a layer.
func (p *Pending) unpackOptions() unpackOptions {
	return unpackOptions{
		allowDevices: canMknod(),
		noChown:      os.Geteuid() != 0,
		userXattr:    p.s.UserXattr(),
		maxSize:      p.s.MaxLayerSize,
	}
}

// blobPath is where ApplyTar keeps the tarball as it was given, until the
// image that refers to it moves it into the blob store.
func (p *Pending) blobPath() string { return filepath.Join(p.path(), "blob") }

// Abort drops the pending layer. It is safe to call after Commit (it then
// does nothing) and more than once.
func (p *Pending) Abort() error {
	if p.done {
		return nil
	}
	p.done = true
	err := removeTree(p.path())
	os.Remove(p.path() + ".lock")
	p.lock.Close()
	return err
}

// Commit makes the pending layer a committed layer and returns it. created
// is recorded as the layer's creation time (zero means now). A committed
// layer that no image or container uses is dangling: prune removes it.
func (p *Pending) Commit(created time.Time) (Layer, error) {
	defer p.Abort() // removes whatever is left of tmp/<name>
	if err := p.finish(); err != nil {
		return Layer{}, err
	}
	release, err := p.s.wlock()
	if err != nil {
		return Layer{}, err
	}
	defer release()
	return p.commitLocked(created)
}

// Finish does the part of Commit that needs no lock: it computes the
// layer's DiffID and size and syncs its files to disk. Commit and AddImage
// do it when it was not done; a caller that fills several layers at once
// calls it as each is filled, so that the syncing of one overlaps the
// filling of the others. The layer must not change afterwards.
func (p *Pending) Finish() error { return p.finish() }

// finish is Finish; it does nothing the second time.
func (p *Pending) finish() error {
	if p.done {
		return errors.New("commit layer: not pending")
	}
	if p.finished {
		return nil
	}
	if p.unpacked == nil {
		h := sha256.New()
		if err := packLayer(p.Dir(), h); err != nil {
			return fmt.Errorf("commit layer: %w", err)
		}
		p.diffID = Digest("sha256:" + hex.EncodeToString(h.Sum(nil)))
	} else {
		p.diffID = p.unpacked.DiffID
	}
	if p.unpacked != nil && p.unpacked.sized {
		p.size = p.unpacked.filesSize
	} else {
		size, err := DirSize(p.Dir())
		if err != nil {
			return fmt.Errorf("commit layer: %w", err)
		}
		p.size = size
	}
	// One syncfs: an fsync of each file (as before) costs a journal
	// commit and a device flush each, seconds for a layer of 20,000
	// files; syncfs also flushes what else is dirty on the store's
	// filesystem, which is the price.
	if err := syncfs(p.path()); err != nil {
		return fmt.Errorf("commit layer: %w", err)
	}
	p.finished = true
	return nil
}

// ID returns the layer's ChainID once it is known (after ApplyTar or
// Commit), else "".
func (p *Pending) ID() Digest {
	switch {
	case p.diffID != "":
		return ChainID(p.parent, p.diffID)
	case p.unpacked != nil:
		return ChainID(p.parent, p.unpacked.DiffID)
	}
	return ""
}

// commitLocked commits a finished pending layer; the caller holds the
// lock exclusive. The tarball ApplyTar kept goes into the blob store.
func (p *Pending) commitLocked(created time.Time) (Layer, error) {
	if created.IsZero() {
		created = time.Now().UTC()
	}
	id := ChainID(p.parent, p.diffID)
	if p.unpacked != nil && !p.partial {
		if err := p.s.putBlobFile(p.blobPath(), p.unpacked.Digest); err != nil {
			return Layer{}, fmt.Errorf("commit layer %s: %w", id.Short(), err)
		}
	}
	if l, err := p.s.Layer(id); err == nil {
		return l, nil // stored once
	}
	l := Layer{ID: id, DiffID: p.diffID, Parent: p.parent, Size: p.size, Created: created}
	if err := p.s.commitDir(p.path(), l); err != nil {
		return Layer{}, fmt.Errorf("commit layer %s: %w", id.Short(), err)
	}
	return l, nil
}

// commitDir moves the filled directory dir to layers/<id> with its link,
// lower and committed files. The caller holds the lock exclusive.
func (s *Store) commitDir(dir string, l Layer) error {
	lower := ""
	if l.Parent != "" {
		parent, err := s.Layer(l.Parent)
		if err != nil {
			return fmt.Errorf("parent: %w", err)
		}
		link, err := s.linkOf(parent.ID)
		if err != nil {
			return err
		}
		lower = "l/" + link
		if pl, err := os.ReadFile(s.path(layersDir, parent.ID.Hex(), "lower")); err == nil && len(pl) > 0 {
			lower += ":" + string(pl)
		}
	}
	short := randomName(shortLinkLen)
	if err := atomicfile.WriteFile(filepath.Join(dir, "link"), []byte(short), 0o644); err != nil {
		return err
	}
	if lower != "" {
		if err := atomicfile.WriteFile(filepath.Join(dir, "lower"), []byte(lower), 0o644); err != nil {
			return err
		}
	}
	final := s.path(layersDir, l.ID.Hex())
	if err := os.Rename(dir, final); err != nil {
		return err
	}
	if err := os.Symlink(filepath.Join("..", layersDir, l.ID.Hex(), "diff"), s.path(linksDir, short)); err != nil {
		return err
	}
	if err := atomicfile.Sync(s.path(linksDir)); err != nil {
		return err
	}
	if err := atomicfile.Sync(s.path(layersDir)); err != nil {
		return err
	}
	meta, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(final, committedName), meta, 0o644)
}

// linkOf returns the short link name of a committed layer.
func (s *Store) linkOf(id Digest) (string, error) {
	b, err := os.ReadFile(s.path(layersDir, id.Hex(), "link"))
	if err != nil {
		return "", fmt.Errorf("layer %s: link: %w", id.Short(), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Layer returns the committed layer with ChainID id.
func (s *Store) Layer(id Digest) (Layer, error) {
	b, err := os.ReadFile(s.path(layersDir, id.Hex(), committedName))
	if errors.Is(err, os.ErrNotExist) {
		return Layer{}, fmt.Errorf("layer %s: %w", id.Short(), ErrNotFound)
	}
	if err != nil {
		return Layer{}, fmt.Errorf("layer %s: %w", id.Short(), err)
	}
	var l Layer
	if err := json.Unmarshal(b, &l); err != nil {
		return Layer{}, fmt.Errorf("layer %s: committed: %w", id.Short(), err)
	}
	return l, nil
}

// Layers returns every committed layer, sorted by id.
func (s *Store) Layers() ([]Layer, error) {
	release, err := s.rlock()
	if err != nil {
		return nil, err
	}
	defer release()
	return s.layers()
}

func (s *Store) layers() ([]Layer, error) {
	ents, err := os.ReadDir(s.path(layersDir))
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	var out []Layer
	for _, e := range ents {
		l, err := s.Layer(Digest("sha256:" + e.Name()))
		if errors.Is(err, ErrNotFound) {
			continue // debris
		}
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// LayerDir returns the diff directory of a committed layer.
func (s *Store) LayerDir(id Digest) string { return s.path(layersDir, id.Hex(), "diff") }

// removeLayer removes a committed layer: first its marker (so that an
// interruption leaves debris, not a broken layer), then its link and
// directory. The caller holds the lock exclusive.
func (s *Store) removeLayer(id Digest) error {
	dir := s.path(layersDir, id.Hex())
	link, _ := s.linkOf(id)
	if err := os.Remove(filepath.Join(dir, committedName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove layer %s: %w", id.Short(), err)
	}
	if link != "" {
		os.Remove(s.path(linksDir, link))
	}
	if err := removeTree(dir); err != nil {
		return fmt.Errorf("remove layer %s: %w", id.Short(), err)
	}
	return nil
}
