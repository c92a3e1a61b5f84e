package registry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/unionfuse/unionfuse/cowcache"
	"golang.org/x/sys/unix"
)

// lazyFiles are the regular files of the image lazyImage pushes.
func lazyFiles(t *testing.T) map[string][]byte {
	big := make([]byte, 9<<20) // three chunks of estargz's 4 MiB
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"small":   []byte("small\n"),
		"tamper":  bytes.Repeat([]byte{'A'}, 8192),
		"dir/big": big,
		"empty":   nil,
	}
}

// pushLazy imports files, in the order of their names (plus a directory
// dir, a hard link to dir/big if there is one, a symbolic link to small
// and an OCI whiteout) into a store, pushes the image with --compression
// estargz to a test registry whose requests go through wrap, and returns
// the pushed reference.
func pushLazy(t *testing.T, files map[string][]byte, wrap func(http.Handler) http.Handler) Reference {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "dir/", Mode: 0o755})
	names := slices.Sorted(maps.Keys(files))
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o640, Size: int64(len(files[n]))})
		tw.Write(files[n])
	}
	if files["dir/big"] != nil {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: "dir/big-link", Linkname: "dir/big"})
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "small"})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: ".wh.gone"})
	tw.Close()
	src := testStore(t)
	if _, err := src.Import(&buf, "lazy:1", "test"); err != nil {
		t.Fatal(err)
	}
	ref, err := ParseReference(testRegistry(t, wrap) + "/lazy:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Tag("lazy:1", ref.Familiar()); err != nil {
		t.Fatal(err)
	}
	if _, err := Push(context.Background(), src, ref, PushOptions{Compression: "estargz"}); err != nil {
		t.Fatal(err)
	}
	return ref
}

// rangeCounter counts the range requests and the bytes of the answers
// to them, and tampers with chunks when told.
type rangeCounter struct {
	requests, bytes atomic.Int64
	blobBytes       atomic.Int64 // of every GET of a blob, ranged or not
	tamper          atomic.Bool
	refuse          atomic.Bool  // answer range requests 503
	stall           atomic.Bool  // send half an answer, then nothing
	delay           atomic.Int64 // nanoseconds before each range answer
}

// countingWriter counts the bytes of a response.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

// Unwrap gives http.ResponseController the writer (to flush).
func (w countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

func (c *rangeCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			w = countingWriter{w, &c.blobBytes}
		}
		if r.Header.Get("Range") == "" {
			h.ServeHTTP(w, r)
			return
		}
		c.requests.Add(1)
		time.Sleep(time.Duration(c.delay.Load()))
		if c.refuse.Load() {
			http.Error(w, "registry down", http.StatusServiceUnavailable)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if c.tamper.Load() {
			body = tamperMember(body)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		if c.stall.Load() {
			w.Write(body[:len(body)/2])
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
			return
		}
		w.Write(body)
		c.bytes.Add(int64(len(body)))
	})
}

// tamperMember turns the A's of a gzip member into B's, keeping its
// length (zero padding after the new member).
func tamperMember(raw []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return raw
	}
	zr.Multistream(false)
	plain, err := io.ReadAll(zr)
	if err != nil || !bytes.Contains(plain, []byte("AAAA")) {
		return raw
	}
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.Write(bytes.ReplaceAll(plain, []byte{'A'}, []byte{'B'}))
	zw.Close()
	if b.Len() > len(raw) {
		return raw
	}
	return append(b.Bytes(), make([]byte, len(raw)-b.Len())...)
}

// lazyLayerDir pulls ref lazily into a new store and returns the store
// and the one layer's diff/.
func lazyLayerDir(t *testing.T, ref Reference) (*cowcache.Store, cowcache.Digest, string) {
	t.Helper()
	s := testStore(t)
	res, err := Pull(context.Background(), s, ref, PullOptions{Lazy: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Image.Layers) != 1 || !s.IsPartial(res.Image.Layers[0]) {
		t.Fatalf("lazy pull: layers %v, partial %v", res.Image.Layers, s.HasPartial(res.Image))
	}
	id := res.Image.Layers[0]
	return s, id, s.LayerDir(id)
}

// TestLazyPullAndFetch: a lazy pull stores the tree with empty files of
// the right sizes and two range requests; fetching reads each chunk
// once, checks it and keeps it across reopenings; a tampered chunk is
// refused and not written; completion gives the full pull's layer.
func TestLazyPullAndFetch(t *testing.T) {
	files := lazyFiles(t)
	rc := &rangeCounter{}
	ref := pushLazy(t, files, rc.wrap)
	s, id, dir := lazyLayerDir(t, ref)
	if n := rc.requests.Load(); n != 2 {
		t.Errorf("the lazy pull made %d range requests, want 2 (footer, TOC)", n)
	}
	for name, want := range files {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Size() != int64(len(want)) {
			t.Fatalf("%s in the partial layer: %v, %v", name, st, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "link")); err != nil || target != "small" {
		t.Errorf("link: %q %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(dir, estargz.TOCTarName)); err != nil {
		t.Errorf("the TOC file, as a full unpack has it: %v", err)
	}

	l, err := OpenLazyLayer(dir)
	if err != nil || l == nil {
		t.Fatalf("OpenLazyLayer: %v %v", l, err)
	}
	rc.tamper.Store(true)
	err = l.Fetch("tamper", 0, 8192)
	if !errors.Is(err, cowcache.ErrDigestMismatch) {
		t.Errorf("fetch of a tampered chunk: %v, want a digest mismatch", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "tamper")); bytes.Contains(b, []byte("B")) {
		t.Errorf("the tampered chunk was written")
	}
	rc.tamper.Store(false)
	before := rc.requests.Load()
	if err := l.Fetch("dir/big-link", 8<<20+5, 10); err != nil {
		t.Fatal(err)
	}
	if n := rc.requests.Load() - before; n != 1 {
		t.Errorf("10 bytes in the last chunk of dir/big took %d requests, want 1", n)
	}
	// Reading a chunk fetches the next ones of the file ahead.
	if err := l.Fetch("dir/big", 0, 10); err != nil {
		t.Fatal(err)
	}
	l.aheadWG.Wait()
	if n := rc.requests.Load() - before; n != 3 {
		t.Errorf("after a read at the start of dir/big, %d requests in all, want 3 (the first chunk, the second ahead)", n)
	}
	for name := range files {
		if err := l.Fetch(name, 0, 1<<30); err != nil {
			t.Fatalf("fetch %s: %v", name, err)
		}
	}
	l.Close()
	for name, want := range files {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(b, want) {
			t.Errorf("%s after fetching: %d bytes, %v", name, len(b), err)
		}
	}
	// Reopened, it knows what is local.
	l, err = OpenLazyLayer(dir)
	if err != nil {
		t.Fatal(err)
	}
	before = rc.requests.Load()
	for name := range files {
		if err := l.Fetch(name, 0, 1<<30); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	if n := rc.requests.Load() - before; n != 0 {
		t.Errorf("fetching again after reopening made %d requests", n)
	}

	if err := CompleteLayer(context.Background(), s, id); err != nil {
		t.Fatal(err)
	}
	if s.IsPartial(id) {
		t.Fatal("still partial after CompleteLayer")
	}
	if l, err := OpenLazyLayer(dir); l != nil || err != nil {
		t.Errorf("OpenLazyLayer of a complete layer: %v %v", l, err)
	}
	full := testStore(t)
	res, err := Pull(context.Background(), full, ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := treeOf(t, dir), treeOf(t, full.LayerDir(res.Image.Layers[0])); got != want {
		t.Errorf("completed layer:\n%s\nfull pull:\n%s", got, want)
	}
}

// TestLazyHostileTOC: a TOC naming paths outside the layer, or files too
// large, is refused by the pull's checks. (Names themselves are cleaned
// relative to the root, as estargz does: "../x" is "x".)
func TestLazyHostileTOC(t *testing.T) {
	s := testStore(t)
	for _, tc := range []struct {
		name    string
		entries []*estargz.TOCEntry
	}{
		{"hard link out", []*estargz.TOCEntry{{Name: "h", Type: "hardlink", LinkName: "../../etc/passwd"}}},
		{"through a symlink", []*estargz.TOCEntry{{Name: "l", Type: "symlink", LinkName: "/etc"}, {Name: "l/passwd", Type: "reg"}}},
		{"huge chunk", []*estargz.TOCEntry{{Name: "f", Type: "reg", Size: 1 << 40, ChunkSize: 1 << 40}}},
		{"too large", []*estargz.TOCEntry{{Name: "f", Type: "reg", Size: 1 << 50, ChunkSize: 4 << 20}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			toc := &layerTOC{entries: tc.entries, json: []byte("{}")}
			err := checkSizes(toc, 0)
			if err == nil {
				p, perr := s.Prepare("")
				if perr != nil {
					t.Fatal(perr)
				}
				defer p.Abort()
				err = p.ApplyPartial(cowcache.Unpacked{}, newTOCTree(toc), tocSizes(toc), map[string][]byte{})
			}
			if err == nil {
				t.Errorf("TOC %v accepted", tc.entries)
			}
		})
	}
}

// treeOf describes a directory: names, modes, sizes and contents.
func treeOf(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		line := rel + " " + fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += " " + string(cowcache.FromBytes(b))
		}
		if rel != "." && fi.Mode()&os.ModeCharDevice == 0 { // whiteouts are made at unpack
			line += " " + fi.ModTime().UTC().String()
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// TestLazyPrefetch: the files before eStargz's prefetch landmark (an
// image built with prioritized files, as buildkit and nerdctl make them)
// are what Prefetch fetches, and only those.
func TestLazyPrefetch(t *testing.T) {
	files := lazyFiles(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "dir/", Mode: 0o755})
	for _, n := range []string{"small", "tamper", "dir/big"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n]))})
		tw.Write(files[n])
	}
	tw.Close()
	blob, err := estargz.Build(io.NewSectionReader(bytes.NewReader(buf.Bytes()), 0, int64(buf.Len())),
		estargz.WithPrioritizedFiles([]string{"tamper"}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(blob)
	if err != nil {
		t.Fatal(err)
	}
	blob.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer,
		Annotations: map[string]string{estargz.TOCJSONDigestAnnotation: blob.TOCDigest().String()}})
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = HostPlatform().OS, HostPlatform().Architecture
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	rc := &rangeCounter{}
	host := testRegistry(t, rc.wrap)
	writeImage(t, host+"/prefetch:1", img)
	ref, _ := ParseReference(host + "/prefetch:1")
	_, _, dir := lazyLayerDir(t, ref)
	l, err := OpenLazyLayer(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	before := rc.requests.Load()
	if err := l.Prefetch(); err != nil {
		t.Fatal(err)
	}
	if n := rc.requests.Load() - before; n != 1 {
		t.Errorf("Prefetch made %d requests, want 1 (tamper)", n)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "tamper")); !bytes.Equal(got, files["tamper"]) {
		t.Errorf("tamper after Prefetch: %.20q", got)
	}
}

// TestLazyRunFetchesNeighbours: reading a small file fetches the small
// files after it in the blob with the same range request, each checked;
// a large chunk ends the run.
func TestLazyRunFetchesNeighbours(t *testing.T) {
	files := map[string][]byte{"small": []byte("small\n")}
	for i := range 40 {
		b := make([]byte, 2000)
		rand.Read(b)
		files[fmt.Sprintf("many/f%02d", i)] = b
	}
	big := make([]byte, 2<<20)
	rand.Read(big)
	files["zz-big"] = big
	rc := &rangeCounter{}
	ref := pushLazy(t, files, rc.wrap)
	_, _, dir := lazyLayerDir(t, ref)
	l, err := OpenLazyLayer(dir)
	if err != nil || l == nil {
		t.Fatalf("OpenLazyLayer: %v %v", l, err)
	}
	defer l.Close()
	before := rc.requests.Load()
	if err := l.Fetch("many/f00", 0, 2000); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		if strings.HasPrefix(name, "many/") {
			if err := l.Fetch(name, 0, 2000); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := rc.requests.Load() - before; n != 1 {
		t.Errorf("the 40 small files took %d range requests, want 1", n)
	}
	if err := l.Fetch("zz-big", 0, 10); err != nil {
		t.Fatal(err)
	}
	if n := rc.requests.Load() - before; n != 2 {
		t.Errorf("%d range requests after reading zz-big, want 2: a 2 MiB chunk is not part of a run", n)
	}
	for name, want := range files {
		if name == "small" {
			continue // before many/ in the blob: not part of the run
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(b, want) {
			t.Errorf("%s: %d bytes, %v", name, len(b), err)
		}
	}
}

// TestChunkLogRecordsInBatches: a chunk written is recorded in the log by
// the periodic flush (after a sync of its data), and a reopened layer
// reads the lines back.
func TestChunkLogRecordsInBatches(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	path := filepath.Join(dir, "chunks")
	c, err := openChunkLog(path, fd)
	if err != nil {
		t.Fatal(err)
	}
	c.record(chunkKey{"a b", 0})
	c.record(chunkKey{"dir/\"c\"", 4 << 20})
	deadline := time.Now().Add(10 * flushInterval)
	for {
		b, _ := os.ReadFile(path)
		if strings.Count(string(b), "\n") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the log holds %q", 10*flushInterval, b)
		}
		time.Sleep(flushInterval / 5)
	}
	// A blob copy made now has none of the chunks recorded so far.
	c.record(chunkKey{"before the copy", 0})
	if err := c.mark(blobCopyMade); err != nil {
		t.Fatal(err)
	}
	c.record(chunkKey{"last", 0})
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	l := &LazyLayer{have: map[chunkKey]bool{}}
	inCopy, err := l.readLog(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[chunkKey]bool{{"a b", 0}: true, {"dir/\"c\"", 4 << 20}: true, {"before the copy", 0}: true, {"last", 0}: true}
	if !maps.Equal(l.have, want) {
		t.Errorf("read back %v, want %v", l.have, want)
	}
	if !slices.Equal(inCopy, []chunkKey{{"last", 0}}) {
		t.Errorf("chunks in the blob copy: %v, want only the one recorded after it was made", inCopy)
	}
}
