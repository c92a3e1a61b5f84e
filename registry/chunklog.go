package registry

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// chunkLog is partial/chunks as a lazy layer appends to it: one line per
// chunk that is local ("OFFSET NAME", the name quoted). A line must never
// reach the disk before its chunk's data, or a crash could leave a file
// that is a hole where the log says data is. The chunks written are
// therefore recorded in batches: every flushInterval (and at close) one
// syncfs(2) of the layer's filesystem makes their data durable, and only
// then are their lines appended. Readers do not wait for any of it: the
// data is in the page cache, and the process knows it is there. A crash
// loses at most the lines not yet appended, whose chunks are fetched again.
type chunkLog struct {
	f   *os.File
	dfd int // a descriptor on the layer's filesystem, for syncfs

	mu      sync.Mutex // guards pending and timer
	pending []chunkKey
	timer   *time.Timer

	flushMu sync.Mutex // one flush at a time
	err     error      // of the last flush that failed
}

// flushInterval is how long a chunk's line waits to be appended at most.
const flushInterval = 500 * time.Millisecond

func openChunkLog(path string, dfd int) (*chunkLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return &chunkLog{f: f, dfd: dfd}, nil
}

// record queues the line of a chunk whose data was written.
func (c *chunkLog) record(k chunkKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, k)
	if c.timer == nil {
		c.timer = time.AfterFunc(flushInterval, func() { c.flush() })
	}
}

// flush makes the queued chunks' data durable and appends their lines.
// Chunks recorded meanwhile wait for the next flush: record never waits
// for a sync.
func (c *chunkLog) flush() error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	batch := c.pending
	c.pending = nil
	c.mu.Unlock()
	if len(batch) == 0 {
		return c.err
	}
	if err := unix.Syncfs(c.dfd); err != nil {
		c.mu.Lock()
		c.pending = append(batch, c.pending...) // for the next flush
		c.mu.Unlock()
		c.err = fmt.Errorf("sync chunks: %w", err)
		return c.err
	}
	var b strings.Builder
	for _, k := range batch {
		b.WriteString(strconv.FormatInt(k.off, 10))
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(k.name))
		b.WriteByte('\n')
	}
	// One write(2) of whole lines, in append mode: lines of other
	// processes serving the same layer do not interleave with them.
	if _, err := c.f.WriteString(b.String()); err != nil {
		c.err = fmt.Errorf("record chunks: %w", err)
		return c.err
	}
	c.err = nil
	return nil
}

// mark appends line, which is not a chunk's, after the lines recorded so
// far.
func (c *chunkLog) mark(line string) error {
	if err := c.flush(); err != nil {
		return err
	}
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	_, err := c.f.WriteString(line + "\n")
	return err
}

// close flushes and closes the log.
func (c *chunkLog) close() error {
	err := c.flush()
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	return err
}
