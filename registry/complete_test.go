package registry

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/cowcache"
)

// fullLayerTree pulls ref fully into a new store and describes its one
// layer (treeOf).
func fullLayerTree(t *testing.T, ref Reference) string {
	t.Helper()
	full := testStore(t)
	res, err := Pull(context.Background(), full, ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return treeOf(t, full.LayerDir(res.Image.Layers[0]))
}

// layerBlob returns the blob digest and size of the partial layer id.
func layerBlob(t *testing.T, s *cowcache.Store, id cowcache.Digest) (cowcache.Digest, int64) {
	t.Helper()
	l, err := OpenLazyLayer(s.LayerDir(id))
	if err != nil || l == nil {
		t.Fatalf("OpenLazyLayer: %v %v", l, err)
	}
	defer l.Close()
	return cowcache.Digest(l.src.Digest), l.src.Size
}

// checkBlob fails unless the store holds blob d.
func checkBlob(t *testing.T, s *cowcache.Store, d cowcache.Digest) {
	t.Helper()
	r, err := s.OpenBlob(d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil || cowcache.FromBytes(b) != d {
		t.Errorf("blob %s in the store: %d bytes of digest %s, %v", d, len(b), cowcache.FromBytes(b), err)
	}
}

// checkCompleted fails unless layer id of s is complete, with blob in
// the blob store and the tree of the fully pulled ref.
func checkCompleted(t *testing.T, s *cowcache.Store, id, blob cowcache.Digest, ref Reference) {
	t.Helper()
	if s.IsPartial(id) {
		t.Fatal("still partial after completion")
	}
	checkBlob(t, s, blob)
	if got, want := treeOf(t, s.LayerDir(id)), fullLayerTree(t, ref); got != want {
		t.Errorf("completed layer:\n%s\nfull pull:\n%s", got, want)
	}
}

// fetched is a layer pulled lazily from a registry counted by rc, some
// of it fetched through l (left open).
type fetched struct {
	rc   *rangeCounter
	ref  Reference
	s    *cowcache.Store
	id   cowcache.Digest
	dir  string          // the layer's diff/
	blob cowcache.Digest // its blob's digest
	size int64           // and size
	l    *LazyLayer
}

// fetchedLayer pushes lazyFiles' image, pulls it lazily and fetches n
// bytes of dir/big.
func fetchedLayer(t *testing.T, n int64) fetched {
	t.Helper()
	f := fetched{rc: &rangeCounter{}}
	f.ref = pushLazy(t, lazyFiles(t), f.rc.wrap)
	f.s, f.id, f.dir = lazyLayerDir(t, f.ref)
	f.blob, f.size = layerBlob(t, f.s, f.id)
	var err error
	if f.l, err = OpenLazyLayer(f.dir); err != nil {
		t.Fatal(err)
	}
	if err := f.l.Fetch("dir/big", 0, n); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCompletionFetchesOnlyTheRest: what reads fetched is not fetched
// again by completion: a lazy pull, reads of some files and completion
// move the blob's bytes once in all, and the completed layer is the
// fully pulled one, its blob in the blob store.
func TestCompletionFetchesOnlyTheRest(t *testing.T) {
	fx := fetchedLayer(t, 5<<20)
	rc, ref, s, id, blob, size, l := fx.rc, fx.ref, fx.s, fx.id, fx.blob, fx.size, fx.l
	l.aheadWG.Wait()
	read := rc.blobBytes.Load()
	if err := l.complete(context.Background(), s, id); err != nil {
		t.Fatal(err)
	}
	l.Close()
	// The footer is read twice at pull (estargz reads a little more
	// than the footer to find it); nothing else is.
	if got := rc.blobBytes.Load(); got > size+64<<10 {
		t.Errorf("pull, reads and completion moved %d bytes of a %d-byte blob (%d before completion)", got, size, read)
	}
	if read < 4<<20 {
		t.Errorf("the reads moved %d bytes, want at least a chunk", read)
	}
	checkCompleted(t, s, id, blob, ref)
}

// TestCompletionRenewsAWrongCopy: a blob copy whose bytes are wrong (a
// disk that lost them) does not make a wrong layer or blob: completion
// finds the digest wrong, makes a new copy from the registry and
// completes; a read that meets the wrong bytes takes the registry's.
func TestCompletionRenewsAWrongCopy(t *testing.T) {
	fx := fetchedLayer(t, 9<<20)
	rc, ref, s, id, dir, blob, size, l := fx.rc, fx.ref, fx.s, fx.id, fx.dir, fx.blob, fx.size, fx.l
	span, ok := l.copy.Load().next(0)
	if !ok {
		t.Fatal("the fetch left nothing in the blob copy")
	}
	l.Close()
	// The copy's bytes of the fetched members go wrong, as on a disk
	// that lost them: the chunk log still says they are there.
	copyPath := filepath.Join(filepath.Dir(dir), "partial", blobCopyFile)
	f, err := os.OpenFile(copyPath, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, span.end-span.start), span.start); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// A read of a chunk the copy has wrong takes the registry's bytes.
	l, err = OpenLazyLayer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.load(); err != nil {
		t.Fatal(err)
	}
	delete(l.have, chunkKey{"dir/big", 0})
	if err := l.Fetch("dir/big", 0, 10); err != nil {
		t.Errorf("a read that met wrong bytes in the copy: %v", err)
	}
	l.Close()
	before := rc.blobBytes.Load()
	if err := CompleteLayer(context.Background(), s, id); err != nil {
		t.Fatal(err)
	}
	if got := rc.blobBytes.Load() - before; got < size-64<<10 {
		t.Errorf("completion from a wrong copy moved %d bytes of a %d-byte blob", got, size)
	}
	checkCompleted(t, s, id, blob, ref)
}

// TestCompletionWithoutCopy: a partial layer without a blob copy (pulled
// by a unionfuse that kept none) gets one, which none of the chunks
// recorded before is taken to be in, and completes.
func TestCompletionWithoutCopy(t *testing.T) {
	fx := fetchedLayer(t, 9<<20)
	rc, ref, s, id, dir, blob, size := fx.rc, fx.ref, fx.s, fx.id, fx.dir, fx.blob, fx.size
	fx.l.Close()
	if err := os.Remove(filepath.Join(filepath.Dir(dir), "partial", blobCopyFile)); err != nil {
		t.Fatal(err)
	}
	before := rc.blobBytes.Load()
	if err := CompleteLayer(context.Background(), s, id); err != nil {
		t.Fatal(err)
	}
	if got := rc.blobBytes.Load() - before; got < size-64<<10 {
		t.Errorf("completion without a copy moved %d bytes of a %d-byte blob: it took recorded chunks to be in the new copy", got, size)
	}
	checkCompleted(t, s, id, blob, ref)
}

// TestCompletionGivesUpOnAStall: a registry that stops sending in the
// middle of the stream ends completion with an error (not a wait without
// end), the layer still partial; once it sends again, completion works.
func TestCompletionGivesUpOnAStall(t *testing.T) {
	defer func(d time.Duration) { streamStall = d }(streamStall)
	streamStall = 300 * time.Millisecond
	fx := fetchedLayer(t, 1<<20)
	fx.l.aheadWG.Wait()
	fx.rc.stall.Store(true)
	done := make(chan error, 1)
	go func() { done <- fx.l.complete(context.Background(), fx.s, fx.id) }()
	select {
	case err := <-done:
		if !errors.Is(err, errStalled) {
			t.Fatalf("completion from a stalled registry: %v, want %v", err, errStalled)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("completion still waits on a stalled registry after 30 s")
	}
	if !fx.s.IsPartial(fx.id) {
		t.Fatal("the layer is complete after a stalled stream")
	}
	fx.rc.stall.Store(false)
	if err := fx.l.complete(context.Background(), fx.s, fx.id); err != nil {
		t.Fatal(err)
	}
	fx.l.Close()
	checkCompleted(t, fx.s, fx.id, fx.blob, fx.ref)
}

// TestCompletionRetries: background completion tries again after the
// registry refused it, and completes the layer once it answers.
func TestCompletionRetries(t *testing.T) {
	defer func(first, max time.Duration) { completeRetryFirst, completeRetryMax = first, max }(completeRetryFirst, completeRetryMax)
	completeRetryFirst, completeRetryMax = 20*time.Millisecond, 100*time.Millisecond
	fx := fetchedLayer(t, 1<<20)
	fx.l.aheadWG.Wait()
	fx.rc.refuse.Store(true)
	var failures atomic.Int64
	logf := func(format string, args ...any) {
		if failures.Add(1) == 3 {
			fx.rc.refuse.Store(false) // the registry is back
		}
	}
	done := make(chan error, 1)
	go func() { done <- fx.l.CompleteRetrying(context.Background(), logf) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("background completion did not complete the layer in 60 s after the registry came back")
	}
	if n := failures.Load(); n < 3 {
		t.Errorf("%d failures reported, want at least 3 (the registry refused them)", n)
	}
	fx.l.Close()
	checkCompleted(t, fx.s, fx.id, fx.blob, fx.ref)
}

// TestCompletionOnceForTwoUnions: two unions of one image (two daemons,
// here two LazyLayers of one layer) completing it at once stream its
// blob once: the second waits for the first, then finds it complete.
func TestCompletionOnceForTwoUnions(t *testing.T) {
	fx := fetchedLayer(t, 1<<20)
	fx.l.Close()
	// Without a blob copy, each completion would stream the whole blob.
	if err := os.Remove(filepath.Join(filepath.Dir(fx.dir), "partial", blobCopyFile)); err != nil {
		t.Fatal(err)
	}
	var layers []*LazyLayer
	for range 2 {
		l, err := OpenLazyLayer(fx.dir)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		layers = append(layers, l)
	}
	// Slow answers, so that the two overlap.
	fx.rc.delay.Store(int64(300 * time.Millisecond))
	before := fx.rc.blobBytes.Load()
	errs := make(chan error, 2)
	for _, l := range layers {
		go func() { errs <- l.Complete(context.Background()) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := fx.rc.blobBytes.Load() - before; got > fx.size+fx.size/2 {
		t.Errorf("two completions of a %d-byte blob moved %d bytes", fx.size, got)
	}
	checkCompleted(t, fx.s, fx.id, fx.blob, fx.ref)
}
