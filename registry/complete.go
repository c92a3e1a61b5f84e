package registry

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/klauspost/compress/gzip"
	"github.com/unionfuse/unionfuse/cowcache"
	"golang.org/x/sys/unix"
)

// Completion of a partial layer: its blob is streamed from start to end
// (blobstream.go: what the blob copy has from the copy, the rest from
// the registry by range requests, into the copy), inflated once, and
// every chunk not yet local is taken from the stream as it passes,
// checked against the TOC as if it came by itself, and written. The
// stream's digest must be the blob's and its inflated digest the
// layer's DiffID; then the store makes the layer a normal one: the copy
// in the blob store, partial/ gone. The layer's directory is filled in
// place, so unions that have it mounted go on reading it, and a read
// that needs a chunk before the stream reaches it fetches it itself,
// into the copy, which the stream then reads instead of the registry.

// CompleteLayer completes the partial layer id of s (see above); a layer
// that is complete is left as it is.
func CompleteLayer(ctx context.Context, s *cowcache.Store, id cowcache.Digest) error {
	l, err := OpenLazyLayer(s.LayerDir(id))
	if l == nil || err != nil {
		return err
	}
	defer l.Close()
	return l.complete(ctx, s, id)
}

// Complete completes the layer in the store it belongs to (the layer's
// diff/ is STORE/layers/ID/diff), as a daemon serving it does in the
// background.
func (l *LazyLayer) Complete(ctx context.Context) error {
	layerDir := filepath.Dir(l.diff)
	s, err := cowcache.Open(filepath.Dir(filepath.Dir(layerDir)))
	if err != nil {
		return err
	}
	defer s.Close()
	return l.complete(ctx, s, cowcache.Digest("sha256:"+filepath.Base(layerDir)))
}

func (l *LazyLayer) complete(ctx context.Context, s *cowcache.Store, id cowcache.Digest) error {
	fail := func(err error) error { return fmt.Errorf("complete layer %s: %w", id.Short(), err) }
	if err := l.load(); err != nil {
		return fail(err)
	}
	layer, err := s.Layer(id)
	if err != nil {
		return fail(err)
	}
	c := l.copy.Load()
	if c == nil {
		return fail(errors.New("its blob copy was dropped as wrong; the next daemon makes a new one"))
	}
	tail, err := os.ReadFile(filepath.Join(l.pdir, tailFile))
	if err == nil {
		err = c.writeAt(tail, l.src.TOCOffset)
	}
	if err != nil {
		return fail(err)
	}
	blobHash, diffHash := sha256.New(), sha256.New()
	stream := io.TeeReader(&blobStream{ctx: ctx, l: l, c: c}, blobHash)
	ierr := l.inflateStream(stream, diffHash)
	// The digest covers the whole blob, whatever the inflating made of
	// it: a copy whose bytes do not inflate is as wrong as one whose
	// digest is.
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return fail(err)
	}
	if got := "sha256:" + hex.EncodeToString(blobHash.Sum(nil)); got != l.src.Digest {
		// Bytes of the copy are wrong (lost by the disk, or never
		// written to a full one), or the registry sent wrong ones: the
		// next daemon makes a new copy.
		l.dropCopy()
		return fail(fmt.Errorf("%w: the blob's digest is %s, the manifest's %s", cowcache.ErrDigestMismatch, got, l.src.Digest))
	}
	if ierr != nil {
		return fail(ierr)
	}
	if got := cowcache.Digest("sha256:" + hex.EncodeToString(diffHash.Sum(nil))); got != layer.DiffID {
		return fail(fmt.Errorf("%w: the blob's DiffID is %s, the layer's %s", cowcache.ErrDigestMismatch, got, layer.DiffID))
	}
	// Chunks that reads were fetching when the stream passed them, or
	// that failed there, are taken from the copy now.
	for _, e := range l.toc.entries {
		if e.Type == "reg" && e.Size > 0 {
			if err := l.Fetch(tocName(e.Name), 0, e.Size); err != nil {
				return fail(err)
			}
		}
	}
	for _, e := range l.toc.entries {
		if e.Type == "reg" && !strings.HasPrefix(path.Base(e.Name), ".wh.") { // whiteouts are devices here
			if err := settleFile(l.dfd, tocName(e.Name), e); err != nil {
				return fail(fmt.Errorf("%s: %w", tocName(e.Name), err))
			}
		}
	}
	// The chunks written must be on disk before the layer is declared
	// complete (they are synced in batches: chunklog.go), and so must
	// the blob.
	if err := l.log.flush(); err != nil {
		return fail(err)
	}
	if err := c.f.Sync(); err != nil {
		return fail(err)
	}
	return s.CompletePartial(id, c.f.Name())
}

// inflateStream inflates the blob stream into diffHash and writes the
// chunks that are not local from it (fillFrom).
func (l *LazyLayer) inflateStream(stream io.Reader, diffHash io.Writer) error {
	zr, err := gzip.NewReader(stream)
	if err != nil {
		return err
	}
	tr := tar.NewReader(io.TeeReader(zr, diffHash))
	var buf []byte
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
			if buf, err = l.fillFrom(tr, tocName(hdr.Name), hdr.Size, buf); err != nil {
				return err
			}
		}
	}
	// The DiffID covers what follows the tarball's end too.
	_, err = io.Copy(diffHash, zr)
	return err
}

// fillFrom takes the data of the file name (size bytes, read from r)
// and writes each chunk of it that is neither local nor being fetched,
// checked against the TOC. A file the TOC does not have, or has with
// another size, is skipped (its chunks are fetched by themselves after
// the stream). buf is reused from call to call.
func (l *LazyLayer) fillFrom(r io.Reader, name string, size int64, buf []byte) ([]byte, error) {
	e, ok := l.toc.r.Lookup(name)
	if !ok || e.Type != "reg" || e.Size != size {
		return buf, nil
	}
	for o := int64(0); o < size; {
		ce, ok := l.toc.r.ChunkEntryForOffset(e.Name, o)
		if !ok || ce.ChunkOffset != o || ce.ChunkSize <= 0 || ce.ChunkSize > maxChunk {
			return buf, fmt.Errorf("%s: no chunk at %d in the TOC", name, o)
		}
		k := chunkKey{tocName(e.Name), o}
		l.mu.Lock()
		busy := l.have[k] || l.inflight[k] != nil
		c := runChunk{key: k, rel: name, ce: ce, call: &chunkCall{done: make(chan struct{})}}
		if !busy {
			l.inflight[k] = c.call
		}
		l.mu.Unlock()
		if busy {
			if _, err := io.CopyN(io.Discard, r, ce.ChunkSize); err != nil {
				return buf, err
			}
			o += ce.ChunkSize
			continue
		}
		if int64(cap(buf)) < ce.ChunkSize {
			buf = make([]byte, ce.ChunkSize)
		}
		data := buf[:ce.ChunkSize]
		_, err := io.ReadFull(r, data)
		if err == nil {
			err = l.writeVerified(name, ce, data)
		}
		if err != nil {
			err = fmt.Errorf("chunk of %s at %d: %w", name, o, err)
		}
		l.settle(c, err)
		if err != nil {
			return buf, err
		}
		o += ce.ChunkSize
	}
	return buf, nil
}

// dropCopy removes the blob copy, which completion found wrong: this
// process goes on without one, and the next makes a new one.
func (l *LazyLayer) dropCopy() {
	if c := l.copy.Swap(nil); c != nil {
		os.Remove(c.f.Name())
		c.close()
	}
}

// settleFile gives the layer's file rel the modification time its TOC
// entry e has: a daemon stopped between a chunk's write and the restoring
// of the file's times left them changed.
func settleFile(dfd int, rel string, e *estargz.TOCEntry) error {
	pfd, err := openBeneath(dfd, rel, unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	mtime := time.Unix(0, 0) // what the layer's unpacking gave a file without one
	if e.ModTime3339 != "" {
		if mtime, err = time.Parse(time.RFC3339, e.ModTime3339); err != nil {
			return err
		}
	}
	proc := "/proc/self/fd/" + strconv.Itoa(pfd)
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(mtime.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, proc, ts, 0)
}
