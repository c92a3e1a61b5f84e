package cowcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// downloadsDir holds blobs fetched from a registry before they become
// layers: <hex> once complete and checked against its digest,
// <hex>.partial while being fetched (flock'ed by the process fetching it).
// Unlike tmp/, what is here survives an interrupted pull, so that the next
// pull resumes instead of fetching again; nothing here is ever part of an
// image, and Prune empties it.
const downloadsDir = "downloads"

// Download is one blob being fetched into the store's download area. It
// holds the blob's lock from StartDownload to Close: two pulls of the same
// blob at once fetch it once, the second waiting for the first.
//
//	dl, err := s.StartDownload(ctx, d)
//	defer dl.Close()
//	if !dl.Complete() {
//		// append to dl.Writer() from dl.Offset() on (a ranged request),
//		// or dl.Restart() and fetch from the beginning
//		err = dl.Finish()
//	}
//	r := dl.Reader()
type Download struct {
	s       *Store
	digest  Digest
	partial *os.File // the locked .partial file (nil once finished)
	done    *os.File // the complete blob, open for reading
}

// StartDownload takes the download of blob d: it waits while another
// process fetches the same blob (until ctx ends), then returns with the
// blob complete (Complete), or with what an earlier, interrupted download
// left of it (Offset bytes) to go on from.
func (s *Store) StartDownload(ctx context.Context, d Digest) (*Download, error) {
	if _, err := ParseDigest(string(d)); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.path(downloadsDir), 0o700); err != nil {
		return nil, storageError(s.root, fmt.Errorf("download %s: %w", d.Short(), err))
	}
	dl := &Download{s: s, digest: d}
	for {
		if f, err := os.Open(dl.completePath()); err == nil {
			dl.done = f
			return dl, nil
		}
		f, err := os.OpenFile(dl.partialPath(), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, storageError(s.root, fmt.Errorf("download %s: %w", d.Short(), err))
		}
		if err := lockWait(ctx, f); err != nil {
			f.Close()
			return nil, fmt.Errorf("download %s: %w", d.Short(), err)
		}
		// The holder before us may have finished (renamed the file we
		// locked) or given up; the lock counts only for the file that is
		// still at the partial path.
		if !samePath(f, dl.partialPath()) {
			f.Close()
			continue
		}
		if c, err := os.Open(dl.completePath()); err == nil {
			f.Close()
			os.Remove(dl.partialPath())
			dl.done = c
			return dl, nil
		}
		dl.partial = f
		return dl, nil
	}
}

// lockWait takes f's lock exclusive, polling so that ctx can end the wait.
func lockWait(ctx context.Context, f *os.File) error {
	for {
		err := flock(f, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// samePath reports whether the open file f is still the file at path.
func samePath(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

func (dl *Download) completePath() string {
	return dl.s.path(downloadsDir, dl.digest.Hex())
}

func (dl *Download) partialPath() string { return dl.completePath() + ".partial" }

// Complete reports whether the blob is all there and checked.
func (dl *Download) Complete() bool { return dl.done != nil }

// Offset returns how many bytes of the blob an earlier download left.
func (dl *Download) Offset() int64 {
	if dl.partial == nil {
		return 0
	}
	fi, err := dl.partial.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Restart drops what an earlier download left, to fetch from the start.
func (dl *Download) Restart() error {
	if dl.partial == nil {
		return errors.New("download: not in progress")
	}
	if err := dl.partial.Truncate(0); err != nil {
		return fmt.Errorf("download %s: %w", dl.digest.Short(), err)
	}
	return nil
}

// Writer returns where the blob's bytes go, appended after Offset.
func (dl *Download) Writer() io.Writer { return appender{dl} }

type appender struct{ dl *Download }

func (a appender) Write(p []byte) (int, error) {
	if a.dl.partial == nil {
		return 0, errors.New("download: not in progress")
	}
	off := a.dl.Offset()
	n, err := a.dl.partial.WriteAt(p, off)
	if err != nil {
		err = storageError(a.dl.s.root, fmt.Errorf("download %s: %w", a.dl.digest.Short(), err))
	}
	return n, err
}

// Finish checks the whole blob against its digest and makes it complete.
// A blob that does not match is dropped (the next download starts
// afresh) and the error says so.
func (dl *Download) Finish() error {
	if dl.partial == nil {
		return errors.New("download: not in progress")
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(dl.partial, 0, dl.Offset())); err != nil {
		return fmt.Errorf("download %s: %w", dl.digest.Short(), err)
	}
	if got := Digest("sha256:" + hex.EncodeToString(h.Sum(nil))); got != dl.digest {
		dl.partial.Truncate(0)
		os.Remove(dl.partialPath())
		return fmt.Errorf("blob %s: %w: the registry sent content with digest %s", dl.digest, ErrDigestMismatch, got)
	}
	if err := dl.partial.Sync(); err != nil {
		return storageError(dl.s.root, fmt.Errorf("download %s: %w", dl.digest.Short(), err))
	}
	if err := os.Rename(dl.partialPath(), dl.completePath()); err != nil {
		return storageError(dl.s.root, fmt.Errorf("download %s: %w", dl.digest.Short(), err))
	}
	atomicfile.Sync(dl.s.path(downloadsDir))
	dl.done = dl.partial
	dl.partial = nil
	if _, err := dl.done.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("download %s: %w", dl.digest.Short(), err)
	}
	return nil
}

// ErrDigestMismatch is returned (wrapped) for content whose digest is not
// the one it was asked for by.
var ErrDigestMismatch = errors.New("digest mismatch")

// Reader returns the complete blob, from its start; it stays readable
// until Close even if another process removes the blob meanwhile.
func (dl *Download) Reader() (io.ReadSeeker, int64, error) {
	if dl.done == nil {
		return nil, 0, errors.New("download: not complete")
	}
	fi, err := dl.done.Stat()
	if err != nil {
		return nil, 0, err
	}
	if _, err := dl.done.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	return dl.done, fi.Size(), nil
}

// Close releases the blob (and its lock). What was fetched stays for the
// next download of the same blob, until RemoveDownload or Prune.
func (dl *Download) Close() error {
	var err error
	for _, f := range []*os.File{dl.partial, dl.done} {
		if f != nil {
			if e := f.Close(); err == nil {
				err = e
			}
		}
	}
	dl.partial, dl.done = nil, nil
	return err
}

// RemoveDownload drops the complete blob d from the download area, once
// the layer made of it is in the store. A blob another process is
// fetching is left alone.
func (s *Store) RemoveDownload(d Digest) error {
	if err := os.Remove(s.path(downloadsDir, d.Hex())); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// pruneDownloads empties the download area but for blobs being fetched.
// The caller holds the lock exclusive.
func (s *Store) pruneDownloads() error {
	ents, err := os.ReadDir(s.path(downloadsDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("prune downloads: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(s.path(downloadsDir), e.Name())
		if strings.HasSuffix(e.Name(), ".partial") {
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			if flock(f, unix.LOCK_EX|unix.LOCK_NB) == nil {
				os.Remove(p)
			}
			f.Close()
			continue
		}
		os.Remove(p)
	}
	return nil
}
