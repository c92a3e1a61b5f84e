package registry

import (
	"fmt"
	"os"
	"sort"
	"sync"
)

// blobCopy is partial/blobcopy: the layer's compressed blob as far as it
// was fetched, every byte at its offset in a sparse file of the blob's
// size. Chunks fetched for reads and the ranges background completion
// streams both land here, so that completion fetches only what no read
// fetched, and reads find what completion fetched before it inflated
// it. The blob store's copy is written by completion's stream itself
// (complete.go), so that what other processes write here never reaches
// it unchecked.
//
// Which bytes are there is known in memory (spans); across processes
// through the chunk log: a chunk recorded there has its gzip member in
// the copy, because the member is written before the chunk is inflated
// and the log syncs before it records (chunklog.go).
type blobCopy struct {
	f    *os.File
	size int64

	mu    sync.Mutex
	spans []span // present ranges, sorted, neither overlapping nor touching
}

// span is the byte range [start, end) of the blob.
type span struct{ start, end int64 }

// openBlobCopy opens the copy at path, making it (sparse, size bytes)
// when it is missing; fresh reports whether it was made, in which case
// nothing is in it whatever the chunk log says.
func openBlobCopy(path string, size int64) (c *blobCopy, fresh bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if os.IsNotExist(err) {
		fresh = true
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err != nil {
		return nil, false, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, false, err
	}
	return &blobCopy{f: f, size: size}, fresh, nil
}

// add records [start, end) as present.
func (c *blobCopy) add(start, end int64) {
	if start >= end {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// The spans that overlap or touch [start, end) are merged into it.
	i := sort.Search(len(c.spans), func(i int) bool { return c.spans[i].end >= start })
	j := i
	for j < len(c.spans) && c.spans[j].start <= end {
		start, end = min(start, c.spans[j].start), max(end, c.spans[j].end)
		j++
	}
	c.spans = append(c.spans[:i], append([]span{{start, end}}, c.spans[j:]...)...)
}

// next returns the first present span that ends after off, or ok false.
func (c *blobCopy) next(off int64) (s span, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := sort.Search(len(c.spans), func(i int) bool { return c.spans[i].end > off })
	if i == len(c.spans) {
		return span{}, false
	}
	return c.spans[i], true
}

// has reports whether all of [start, end) is present.
func (c *blobCopy) has(start, end int64) bool {
	s, ok := c.next(start)
	return ok && s.start <= start && end <= s.end
}

// readAt fills p from the copy at off when all of it is present.
func (c *blobCopy) readAt(p []byte, off int64) (bool, error) {
	if !c.has(off, off+int64(len(p))) {
		return false, nil
	}
	if _, err := c.f.ReadAt(p, off); err != nil {
		return false, fmt.Errorf("blob copy: %w", err)
	}
	return true, nil
}

// writeAt writes p, the blob's bytes at off, and records them present.
func (c *blobCopy) writeAt(p []byte, off int64) error {
	if off < 0 || off+int64(len(p)) > c.size {
		return fmt.Errorf("blob copy: %d bytes at %d outside the blob's %d", len(p), off, c.size)
	}
	if _, err := c.f.WriteAt(p, off); err != nil {
		return fmt.Errorf("blob copy: %w", err)
	}
	c.add(off, off+int64(len(p)))
	return nil
}

// close closes the file.
func (c *blobCopy) close() error { return c.f.Close() }
