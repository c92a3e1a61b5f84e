package registry

import (
	"bytes"
	"fmt"
	"io"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/klauspost/compress/gzip"
	"github.com/unionfuse/unionfuse/cowcache"
)

// A chunk that is needed is fetched together with the chunks that follow
// it in the blob, as far as they are not local and the run stays small:
// one range request for many small files. A registry answers a range
// request in milliseconds whatever its size (docker-registry here: 8 ms),
// so a tree of small files read one by one costs a round trip each, and
// files that are neighbours in the blob are mostly read together (a
// directory's files are packed in a row). Each chunk of a run is still
// checked against its own digest, and one that fails is not written.
const (
	maxRunBytes  = 1 << 20 // compressed bytes of a run, at most
	maxRunChunks = 64
)

// runChunk is one chunk of a run and the call others wait on.
type runChunk struct {
	key  chunkKey
	rel  string // where to write it
	ce   *estargz.TOCEntry
	call *chunkCall
}

// chunkOf makes chunk ce of the file (rel, TOC name name) present,
// fetching it once however many ask at a time.
func (l *LazyLayer) chunkOf(rel, name string, ce *estargz.TOCEntry) error {
	k := chunkKey{tocName(name), ce.ChunkOffset}
	l.mu.Lock()
	if l.have[k] {
		l.mu.Unlock()
		return nil
	}
	if c, ok := l.inflight[k]; ok {
		l.mu.Unlock()
		<-c.done
		return c.err
	}
	run := l.claimRun(runChunk{key: k, rel: rel, ce: ce, call: &chunkCall{done: make(chan struct{})}})
	l.mu.Unlock()
	l.fetchRun(run)
	return run[0].call.err
}

// claimRun registers first and the chunks after it in the blob that make
// its run as in flight; the caller holds l.mu.
func (l *LazyLayer) claimRun(first runChunk) []runChunk {
	run := []runChunk{first}
	l.inflight[first.key] = first.call
	i, ok := l.index[first.key]
	if !ok {
		return run
	}
	for _, next := range l.order[i+1:] {
		k := chunkKey{next.name, next.off}
		if len(run) == maxRunChunks || l.have[k] || l.inflight[k] != nil {
			break
		}
		if end, err := l.chunkEnd(next.ce); err != nil || end-first.ce.Offset > maxRunBytes {
			break
		}
		c := runChunk{key: k, rel: next.name, ce: next.ce, call: &chunkCall{done: make(chan struct{})}}
		l.inflight[k] = c.call
		run = append(run, c)
	}
	return run
}

// chunkEnd returns where the gzip member of chunk ce ends in the blob,
// refusing offsets a TOC should not have.
func (l *LazyLayer) chunkEnd(ce *estargz.TOCEntry) (int64, error) {
	// estargz gives the last chunk the blob's end as its end: the TOC
	// follows, which the chunk does not need.
	end := min(ce.NextOffset(), l.src.TOCOffset)
	if end <= ce.Offset || end-ce.Offset > maxChunk+1<<20 || ce.ChunkSize > maxChunk {
		return 0, fmt.Errorf("bad offsets %d..%d in the TOC", ce.Offset, end)
	}
	return end, nil
}

// fetchRun reads the run's gzip members with one range request, checks
// each chunk's data against the TOC's digest and writes it, and ends
// every chunk's call.
func (l *LazyLayer) fetchRun(run []runChunk) {
	start := run[0].ce.Offset
	end, err := l.chunkEnd(run[len(run)-1].ce)
	var comp []byte
	fromCopy := false
	if err == nil {
		comp = make([]byte, end-start)
		fromCopy, err = l.readBlob(comp, start, false)
	}
	copy := l.copy.Load()
	for _, c := range run {
		cerr := err
		if cerr == nil {
			cend, _ := l.chunkEnd(c.ce) // checked when claimed
			member := comp[c.ce.Offset-start : cend-start]
			cerr = l.storeChunk(c.rel, c.ce, member)
			if cerr != nil && fromCopy {
				// The copy's bytes are wrong (completion finds out
				// and renews it): the registry's are taken instead.
				if _, cerr = l.readBlob(member, c.ce.Offset, true); cerr == nil {
					cerr = l.storeChunk(c.rel, c.ce, member)
				}
			} else if cerr == nil && copy != nil && !fromCopy {
				// Only a member whose chunk checked out goes into the
				// blob copy, before the chunk is recorded (blobcopy.go).
				// One that cannot be written (a full disk) costs
				// completion a second stream: the copy is then wrong,
				// and renewed.
				copy.writeAt(member, c.ce.Offset)
			}
		}
		if cerr != nil {
			cerr = fmt.Errorf("chunk of %s at %d: %w", c.rel, c.ce.ChunkOffset, cerr)
		}
		l.settle(c, cerr)
	}
}

// storeChunk inflates chunk ce from its gzip member comp, checks it
// against the TOC's digest and writes it into the file rel.
func (l *LazyLayer) storeChunk(rel string, ce *estargz.TOCEntry, comp []byte) error {
	data, err := inflateChunk(comp, ce)
	if err != nil {
		return err
	}
	return l.writeVerified(rel, ce, data)
}

// writeVerified checks data, chunk ce of the file rel, against the TOC's
// digest and writes it into the file.
func (l *LazyLayer) writeVerified(rel string, ce *estargz.TOCEntry, data []byte) error {
	v, err := l.toc.verifier.Verifier(ce)
	if err != nil {
		return err
	}
	v.Write(data)
	if !v.Verified() {
		return fmt.Errorf("%w: it does not have the TOC's digest", cowcache.ErrDigestMismatch)
	}
	return l.writeChunk(rel, data, ce.ChunkOffset)
}

// settle ends the call of chunk c with err; a chunk written is local from
// now on, and recorded in the log (chunklog.go).
func (l *LazyLayer) settle(c runChunk, err error) {
	l.mu.Lock()
	delete(l.inflight, c.key)
	if err == nil {
		l.have[c.key] = true
	}
	l.mu.Unlock()
	c.call.err = err
	close(c.call.done)
	if err == nil {
		l.log.record(c.key)
	}
}

// inflateChunk returns the chunk's data from its gzip member.
func inflateChunk(comp []byte, ce *estargz.TOCEntry) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(comp))
	if err != nil {
		return nil, err
	}
	if _, err := io.CopyN(io.Discard, zr, ce.InnerOffset); err != nil {
		return nil, err
	}
	data := make([]byte, ce.ChunkSize)
	if _, err := io.ReadFull(zr, data); err != nil {
		return nil, err
	}
	return data, nil
}
