package registry

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/unionfuse/unionfuse/cowcache"
	"golang.org/x/sys/unix"
)

// Completion of a partial layer: its blob is downloaded whole into the
// store's download area (resuming, digest checked, as a pull), its
// DiffID is checked against the layer's, every chunk not yet local is
// taken from the downloaded blob (each checked against the TOC as if it
// came from the registry), and the store makes the layer a normal one:
// the blob in the blob store, partial/ gone. The layer's directory is
// filled in place, so unions that have it mounted go on reading it.

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
	repo, err := repoOf(&l.src)
	if err != nil {
		return fail(err)
	}
	o := l.src.options()
	ropts, err := o.remoteOptions(ctx, repo.RegistryStr())
	if err != nil {
		return fail(err)
	}
	puller, err := remote.NewPuller(ropts...)
	if err != nil {
		return fail(err)
	}
	h, err := v1.NewHash(l.src.Digest)
	if err != nil {
		return fail(err)
	}
	f := newFetcher(s, repo, puller, &o, &reporter{}, 1)
	dl, err := f.download(ctx, v1.Descriptor{MediaType: types.OCILayer, Digest: h, Size: l.src.Size})
	if err != nil {
		return fail(err)
	}
	defer dl.Close()
	r, _, err := dl.Reader()
	if err != nil {
		return fail(err)
	}
	if got, err := gzipDiffID(r); err != nil {
		return fail(err)
	} else if got != layer.DiffID {
		return fail(fmt.Errorf("%w: the blob's DiffID is %s, the layer's %s", cowcache.ErrDigestMismatch, got, layer.DiffID))
	}
	ra, ok := r.(io.ReaderAt)
	if !ok {
		return fail(fmt.Errorf("the download cannot be read at offsets"))
	}
	l.connMu.Lock()
	l.blob = ra
	l.connMu.Unlock()
	defer func() {
		l.connMu.Lock()
		l.blob = nil
		l.connMu.Unlock()
	}()
	for _, e := range l.toc.entries {
		if e.Type == "reg" && e.Size > 0 {
			if err := ctx.Err(); err != nil {
				return fail(err)
			}
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
	// complete (they are synced in batches: chunklog.go).
	if err := l.log.flush(); err != nil {
		return fail(err)
	}
	if err := s.CompletePartial(id, dl); err != nil {
		return err
	}
	s.RemoveDownload(cowcache.Digest(l.src.Digest))
	return nil
}

// gzipDiffID returns the digest of the uncompressed content of the gzip
// stream r (all its members).
func gzipDiffID(r io.Reader) (cowcache.Digest, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return "", err
	}
	defer zr.Close()
	h := sha256.New()
	if _, err := io.Copy(h, zr); err != nil {
		return "", err
	}
	return cowcache.Digest("sha256:" + hex.EncodeToString(h.Sum(nil))), nil
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
