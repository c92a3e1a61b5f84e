package registry

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/unionfuse/unionfuse/cowcache"
	"golang.org/x/sys/unix"
)

// chunkTimeout bounds one range request for a chunk.
const chunkTimeout = 30 * time.Second

// LazyLayer serves the file data of a partial layer (lazy.go) on demand:
// each chunk of a file is fetched from the registry by a range request
// the first time it is needed, checked against the chunk digest of the
// TOC (itself checked against the manifest at pull), written into the
// layer's file and recorded in partial/chunks, so that it is fetched once
// for every mount and process. A chunk that fails its check is never
// written. It implements the union's Fetcher (fs/lazy.go).
type LazyLayer struct {
	diff string // the layer's diff/
	pdir string // the layer's partial/
	dfd  int    // descriptor of diff/
	src  source
	toc  *layerTOC // set by load

	// copy is partial/blobcopy (set by load; nil once completion found
	// it wrong).
	copy atomic.Pointer[blobCopy]

	loadOnce sync.Once
	loadErr  error

	connMu sync.Mutex
	blob   *blobRange // the registry's blob, once connected

	mu       sync.Mutex
	have     map[chunkKey]bool
	inflight map[chunkKey]*chunkCall
	log      *chunkLog // partial/chunks

	// order lists the data chunks in blob order, and index gives each
	// one's place there, for readahead.
	order   []dataChunk
	index   map[chunkKey]int
	ahead   chan struct{} // slots for readahead fetches
	aheadWG sync.WaitGroup
}

// dataChunk is a chunk of a file, as readahead and runs fetch it.
type dataChunk struct {
	name string // the file's name in the TOC
	off  int64  // the chunk's offset in the file
	ce   *estargz.TOCEntry
}

// chunkKey names a chunk: its file (the TOC's name of the data's first
// name, for hard links) and its offset in the file.
type chunkKey struct {
	name string
	off  int64
}

// chunkCall is a fetch of one chunk in progress; done closes when err is
// set.
type chunkCall struct {
	done chan struct{}
	err  error
}

// OpenLazyLayer opens the partial layer whose diff/ is diffDir; it returns
// nil, nil when the layer is not partial (complete, or not a store layer).
func OpenLazyLayer(diffDir string) (*LazyLayer, error) {
	pdir, ok := cowcache.PartialDir(diffDir)
	if !ok {
		return nil, nil
	}
	l := &LazyLayer{diff: diffDir, pdir: pdir, dfd: -1, have: map[chunkKey]bool{}, inflight: map[chunkKey]*chunkCall{},
		index: map[chunkKey]int{}, ahead: make(chan struct{}, readaheadChunks)}
	fail := func(err error) (*LazyLayer, error) {
		l.Close()
		return nil, fmt.Errorf("lazy layer %s: %w", diffDir, err)
	}
	b, err := os.ReadFile(filepath.Join(pdir, sourceFile))
	if err != nil {
		return fail(err)
	}
	if err := json.Unmarshal(b, &l.src); err != nil {
		return fail(err)
	}
	if l.dfd, err = unix.Open(diffDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return fail(err)
	}
	if l.log, err = openChunkLog(filepath.Join(pdir, chunksFile), l.dfd); err != nil {
		return fail(err)
	}
	return l, nil
}

// load reads what the layer's chunks are, once, when they are first
// needed: the TOC (parsed and checked against the manifest's digest),
// the chunks in blob order, the log of those that are local, and the
// blob copy (blobcopy.go). A union mounts an image's partial layers
// without it, which spares a container's start the parsing of every
// layer's TOC (a quarter of a second for a 1 GB image of 20,000 files).
func (l *LazyLayer) load() error {
	l.loadOnce.Do(func() {
		tail, err := os.ReadFile(filepath.Join(l.pdir, tailFile))
		if err == nil {
			l.toc, err = openTOC(&l.src, tail)
		}
		var inCopy []chunkKey
		if err == nil {
			l.indexChunks()
			inCopy, err = l.readLog(filepath.Join(l.pdir, chunksFile))
		}
		if err == nil {
			err = l.openCopy(inCopy)
		}
		if err != nil {
			l.loadErr = fmt.Errorf("lazy layer %s: %w", l.diff, err)
		}
	})
	return l.loadErr
}

// readLog loads the chunks recorded present, and returns those recorded
// since the blob copy was made: their gzip members are in it. A line cut
// by a crash is ignored (its chunk is fetched again).
func (l *LazyLayer) readLog(path string) (inCopy []chunkKey, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if sc.Text() == blobCopyMade {
			inCopy = inCopy[:0]
			continue
		}
		off, q, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		n, err1 := strconv.ParseInt(off, 10, 64)
		name, err2 := strconv.Unquote(q)
		if err1 == nil && err2 == nil {
			k := chunkKey{name, n}
			l.have[k] = true
			inCopy = append(inCopy, k)
		}
	}
	return inCopy, sc.Err()
}

// openCopy opens the blob copy, whose present ranges are the gzip
// members of the chunks inCopy. A copy made now (the layer was pulled by
// a unionfuse without copies, or completion dropped a wrong one) has
// nothing, and the log says so from here on (blobCopyMade).
func (l *LazyLayer) openCopy(inCopy []chunkKey) error {
	c, fresh, err := openBlobCopy(filepath.Join(l.pdir, blobCopyFile), l.src.Size)
	if err != nil {
		return err
	}
	if fresh {
		if err := l.log.mark(blobCopyMade); err != nil {
			c.close()
			return err
		}
		inCopy = nil
	}
	for _, k := range inCopy {
		if i, ok := l.index[k]; ok {
			ce := l.order[i].ce
			if end, err := l.chunkEnd(ce); err == nil {
				c.add(ce.Offset, end)
			}
		}
	}
	l.copy.Store(c)
	return nil
}

// Close waits for the readahead in progress, records the chunks written
// (chunklog.go) and releases the layer's descriptors.
func (l *LazyLayer) Close() error {
	l.aheadWG.Wait()
	var err error
	if l.log != nil {
		err = l.log.close()
	}
	if l.dfd >= 0 {
		unix.Close(l.dfd)
		l.dfd = -1
	}
	if c := l.copy.Swap(nil); c != nil {
		c.close()
	}
	return err
}

// readaheadChunks is how many chunks are fetched ahead of reads at most:
// while a reader uses one chunk of a file, the next ones are on their way.
const readaheadChunks = 2

// indexChunks lists the layer's data chunks in blob order.
func (l *LazyLayer) indexChunks() {
	name := ""
	for _, e := range l.toc.entries {
		switch e.Type {
		case "reg":
			name = tocName(e.Name)
			if e.Size == 0 {
				continue
			}
		case "chunk":
		default:
			continue
		}
		k := chunkKey{name, e.ChunkOffset}
		if _, dup := l.index[k]; dup {
			continue
		}
		// The reader's entry, which knows where the next chunk starts.
		if ce, ok := l.toc.r.ChunkEntryForOffset(name, e.ChunkOffset); ok {
			l.index[k] = len(l.order)
			l.order = append(l.order, dataChunk{name: name, off: e.ChunkOffset, ce: ce})
		}
	}
}

// readahead starts fetching the chunks that follow k in the blob, as far
// as there are free slots; errors are left for the reads that need them.
func (l *LazyLayer) readahead(k chunkKey) {
	i, ok := l.index[k]
	if !ok {
		return
	}
	for _, next := range l.order[i+1 : min(i+1+readaheadChunks, len(l.order))] {
		if next.name != k.name {
			// Only the rest of the file: the order of files in the
			// blob says little of the order they are read in.
			return
		}
		nk := chunkKey{next.name, next.off}
		l.mu.Lock()
		busy := l.have[nk] || l.inflight[nk] != nil
		l.mu.Unlock()
		if busy {
			continue
		}
		select {
		case l.ahead <- struct{}{}:
		default:
			return
		}
		l.aheadWG.Add(1)
		go func() {
			defer l.aheadWG.Done()
			defer func() { <-l.ahead }()
			l.chunkOf(next.name, next.name, next.ce)
		}()
	}
}

// Fetch makes bytes [off, off+n) of the file rel present (see fs.Fetcher).
func (l *LazyLayer) Fetch(rel string, off, n int64) error {
	if err := l.load(); err != nil {
		return err
	}
	e, ok := l.toc.r.Lookup(rel)
	if !ok || e.Type != "reg" {
		return nil // not a file of the TOC (stargz.index.json): complete
	}
	end := min(off+n, e.Size)
	for o := max(off, 0); o < end; {
		ce, ok := l.toc.r.ChunkEntryForOffset(e.Name, o)
		if !ok || ce.ChunkSize <= 0 {
			return fmt.Errorf("no chunk of %s at %d in the TOC", rel, o)
		}
		if err := l.chunkOf(rel, e.Name, ce); err != nil {
			return err
		}
		l.readahead(chunkKey{tocName(e.Name), ce.ChunkOffset})
		o = ce.ChunkOffset + ce.ChunkSize
	}
	return nil
}

// writeChunk writes data at off into the layer's file rel (the log
// syncs it before it records it).
func (l *LazyLayer) writeChunk(rel string, data []byte, off int64) error {
	return writeFile(l.dfd, rel, func(fd int, st *unix.Stat_t) error {
		if st.Size < off+int64(len(data)) {
			return fmt.Errorf("%s is not the file the TOC describes", rel)
		}
		_, err := unix.Pwrite(fd, data, off)
		return err
	})
}

// fileWriteLocks serialize writeFile per inode (striped).
var fileWriteLocks [64]sync.Mutex

// writeFile runs fn on the regular file rel below dfd opened for
// writing, then gives the file back its mode and times (the TOC's, which
// a write and, without root, a truncation would change). A file without
// write permission for its owner (this process, rootless) gets it for
// the time of fn.
func writeFile(dfd int, rel string, fn func(fd int, st *unix.Stat_t) error) error {
	pfd, err := openBeneath(dfd, rel, unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return err
	}
	// Two writers of one file (a read's chunk and readahead's, or through
	// two hard links) must not interleave: the second would take the
	// first's write time for the file's and give it back.
	lock := &fileWriteLocks[st.Ino%uint64(len(fileWriteLocks))]
	lock.Lock()
	defer lock.Unlock()
	if err := unix.Fstat(pfd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s is not a regular file", rel)
	}
	proc := "/proc/self/fd/" + strconv.Itoa(pfd)
	mode := st.Mode & 0o7777
	if mode&0o200 == 0 {
		if err := unix.Chmod(proc, mode|0o200); err != nil {
			return err
		}
	}
	fd, err := unix.Open(proc, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = fn(fd, &st)
		unix.Close(fd)
	}
	// A truncation by a non-root owner drops setuid and setgid: the
	// mode is set again whatever happened.
	if cerr := unix.Chmod(proc, mode); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(st.Atim.Nano()), unix.NsecToTimespec(st.Mtim.Nano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, proc, ts, 0)
}

// readBlob reads len(p) bytes of the blob at off: from the blob copy
// when it has them and the registry is not asked for, else from the
// registry.
func (l *LazyLayer) readBlob(p []byte, off int64, registry bool) (fromCopy bool, err error) {
	if c := l.copy.Load(); c != nil && !registry {
		if ok, err := c.readAt(p, off); ok && err == nil {
			return true, nil
		}
	}
	return false, l.readRemote(p, off)
}

// readRemote reads len(p) bytes of the blob at off from the registry.
func (l *LazyLayer) readRemote(p []byte, off int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), chunkTimeout)
	defer cancel()
	b, err := l.remote(ctx)
	if err != nil {
		return err
	}
	if _, err := b.readAt(ctx, p, off); err != nil {
		l.disconnect(b)
		return err
	}
	return nil
}

// remote returns the connection to the registry's blob, connecting if
// needed.
func (l *LazyLayer) remote(ctx context.Context) (*blobRange, error) {
	l.connMu.Lock()
	defer l.connMu.Unlock()
	if l.blob != nil {
		return l.blob, nil
	}
	repo, err := repoOf(&l.src)
	if err != nil {
		return nil, err
	}
	o := l.src.options()
	if l.blob, err = newBlobRange(ctx, &o, repo, l.src.Digest, l.src.Size); err != nil {
		return nil, err
	}
	return l.blob, nil
}

// disconnect drops the connection b after a failed request, so that the
// next request connects again.
func (l *LazyLayer) disconnect(b *blobRange) {
	l.connMu.Lock()
	if l.blob == b {
		l.blob = nil
	}
	l.connMu.Unlock()
}

// Prefetch fetches the files the image marks to be read first: in
// eStargz, those before the prefetch landmark in the TOC (the files a
// build recorded the container reading at start). An image with the
// no-prefetch landmark, or none, has none.
func (l *LazyLayer) Prefetch() error {
	// The landmark is a file of the layer (newTOCTree makes it as the blob
	// has it): without it, there is nothing to prefetch, and the TOC is
	// not read now, while the container starts.
	var st unix.Stat_t
	if err := unix.Fstatat(l.dfd, estargz.PrefetchLandmark, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil
	}
	if err := l.load(); err != nil {
		return err
	}
	var names []string
	for _, e := range l.toc.entries {
		switch n := tocName(e.Name); {
		case n == estargz.PrefetchLandmark:
			for _, name := range names {
				if err := l.Fetch(name, 0, 1<<62); err != nil {
					return err
				}
			}
			return nil
		case n == estargz.NoPrefetchLandmark:
			return nil
		case e.Type == "reg" && e.Size > 0:
			names = append(names, n)
		}
	}
	return nil
}
