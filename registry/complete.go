package registry

import (
	"archive/tar"
	"bufio"
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
	release, done, err := l.lockCompletion(ctx)
	if err != nil {
		return fail(err)
	}
	if done {
		return nil
	}
	defer release()
	if err := l.load(); err != nil {
		return fail(err)
	}
	layer, err := s.Layer(id)
	if err != nil {
		return fail(err)
	}
	finish := func(blob string) error { return l.finish(s, id, blob) }
	err = l.streamBlob(ctx, s, layer.DiffID, finish)
	if errors.Is(err, errWrongCopy) {
		// The copy had wrong bytes (a disk that lost them, another
		// process's chunks, a write cut short): once more, from a new
		// copy that takes everything from the registry.
		if err = l.renewCopy(); err == nil {
			err = l.streamBlob(ctx, s, layer.DiffID, finish)
		}
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// streamBuffer is the size of the pieces completion streams the blob in.
const streamBuffer = 1 << 20

// errWrongCopy says the blob copy's bytes did not make the blob.
var errWrongCopy = errors.New("the blob copy's bytes are not the blob's")

// streamBlob streams the blob (blobstream.go) into a file of its own in
// the store's tmp/, inflates it once, writing the chunks not yet local
// as they pass, checks its digest and DiffID, and hands the file to
// finish. The store's blob is thus a file only this stream wrote, with
// the bytes that were hashed, whatever other processes do to the copy.
func (l *LazyLayer) streamBlob(ctx context.Context, s *cowcache.Store, diffID cowcache.Digest, finish func(blob string) error) error {
	c := l.copy.Load()
	if c == nil {
		return errors.New("no blob copy")
	}
	tail, err := os.ReadFile(filepath.Join(l.pdir, tailFile))
	if err == nil {
		err = c.writeAt(tail, l.src.TOCOffset)
	}
	if err != nil {
		return err
	}
	out, done, err := s.TempFile("blob of a lazy layer")
	if err != nil {
		return err
	}
	defer done()
	blobHash, diffHash := sha256.New(), sha256.New()
	bs, stop := newBlobStream(ctx, l, c)
	defer stop()
	// The stream is read in pieces of streamBuffer bytes, not gzip's
	// small reads: a write of the copy and of the blob file each.
	stream := bufio.NewReaderSize(io.TeeReader(bs, io.MultiWriter(blobHash, out)), streamBuffer)
	ierr := l.inflateStream(stream, diffHash)
	if bs.err != nil {
		return bs.err // the registry or the copy failed: nothing to check
	}
	// The digest covers the whole blob, whatever the inflating made of
	// it: a copy whose bytes do not inflate is as wrong as one whose
	// digest is.
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(blobHash.Sum(nil)); got != l.src.Digest {
		return fmt.Errorf("%w: %w: digest %s, the manifest's %s", errWrongCopy, cowcache.ErrDigestMismatch, got, l.src.Digest)
	}
	if ierr != nil {
		return ierr
	}
	if got := cowcache.Digest("sha256:" + hex.EncodeToString(diffHash.Sum(nil))); got != diffID {
		return fmt.Errorf("%w: the blob's DiffID is %s, the layer's %s", cowcache.ErrDigestMismatch, got, diffID)
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return finish(out.Name())
}

// finish makes every chunk local and durable, then the layer complete
// with blob, the checked blob file.
func (l *LazyLayer) finish(s *cowcache.Store, id cowcache.Digest, blob string) error {
	// Chunks that reads were fetching when the stream passed them, or
	// that failed there, are taken from the copy now.
	for _, e := range l.toc.entries {
		if e.Type == "reg" && e.Size > 0 {
			if err := l.Fetch(tocName(e.Name), 0, e.Size); err != nil {
				return err
			}
		}
	}
	for _, e := range l.toc.entries {
		if e.Type == "reg" && !strings.HasPrefix(path.Base(e.Name), ".wh.") { // whiteouts are devices here
			if err := settleFile(l.dfd, tocName(e.Name), e); err != nil {
				return fmt.Errorf("%s: %w", tocName(e.Name), err)
			}
		}
	}
	// The chunks written must be on disk before the layer is declared
	// complete (they are synced in batches: chunklog.go), and so must
	// the blob.
	if err := l.log.flush(); err != nil {
		return err
	}
	return s.CompletePartial(id, blob)
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
		if _, err := io.ReadFull(r, data); err != nil {
			l.settle(c, err)
			return buf, err
		}
		// A chunk that fails its check (a tarball with two files of one
		// name, the TOC naming the last) is left to the fetches after
		// the stream; the digest checks say whether the blob is right.
		if err := l.writeVerified(name, ce, data); err != nil {
			l.settle(c, fmt.Errorf("chunk of %s at %d: %w", name, o, err))
		} else {
			l.settle(c, nil)
		}
		o += ce.ChunkSize
	}
	return buf, nil
}

// renewCopy replaces the blob copy, found wrong, with a new empty one
// (and says so in the chunk log: none of the chunks recorded so far is
// in it).
func (l *LazyLayer) renewCopy() error {
	if c := l.copy.Swap(nil); c != nil {
		os.Remove(c.f.Name())
		c.close()
	}
	return l.openCopy(nil)
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
