package cowcache

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/internal/testutil"
)

func TestChainID(t *testing.T) {
	a, b, c := FromBytes([]byte("a")), FromBytes([]byte("b")), FromBytes([]byte("c"))
	ids := ChainIDs([]Digest{a, b, c})
	if ids[0] != a {
		t.Errorf("ChainID of the bottom layer is its DiffID: got %s", ids[0])
	}
	if want := FromBytes([]byte(string(a) + " " + string(b))); ids[1] != want {
		t.Errorf("ChainID(a|b) = %s, want %s", ids[1], want)
	}
	if want := FromBytes([]byte(string(ids[1]) + " " + string(c))); ids[2] != want {
		t.Errorf("ChainID(a|b|c) = %s, want %s", ids[2], want)
	}
	if ChainID(a, b) == ChainID(b, b) {
		t.Error("the same content on different parents has the same id")
	}
	if _, err := ParseDigest(string(a)); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"sha256:xyz", "md5:" + a.Hex(), a.Hex()} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("ParseDigest(%q) succeeded", bad)
		}
	}
}

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{
		"busybox": "busybox:latest", "busybox:1.36": "busybox:1.36", "acme/my-base-image:1.0": "acme/my-base-image:1.0",
		"localhost:5000/x": "localhost:5000/x:latest", "localhost:5000/x:y": "localhost:5000/x:y",
	} {
		if got, err := NormalizeName(in); err != nil || got != want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "Busybox", "a:", "a::b", "a b", "a/../b", "-a", "a:-b"} {
		if got, err := NormalizeName(bad); err == nil {
			t.Errorf("NormalizeName(%q) = %q, want an error", bad, got)
		}
	}
}

func TestImportSharesLayers(t *testing.T) {
	s := newStore(t)
	tb := testutil.Tar(t, testutil.Spec("bin/", "bin/hello=hello world\n", "bin/hi->hello", "bin/hello2=>bin/hello"))
	a, err := s.Import(bytes.NewReader(tb), "a", "a.tar")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Import(bytes.NewReader(testutil.Gzip(tb)), "b:2", "b.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	if a.Layers[0] != b.Layers[0] {
		t.Errorf("same content, different layers: %s %s", a.Layers[0], b.Layers[0])
	}
	if a.Layers[0] != FromBytes(tb) {
		t.Errorf("layer id %s, want the tarball's digest %s", a.Layers[0], FromBytes(tb))
	}
	if layers, _ := s.Layers(); len(layers) != 1 {
		t.Errorf("%d layers stored, want 1", len(layers))
	}
	if want := int64(len("hello world\n") + len("hello")); a.Size != want {
		t.Errorf("image size %d, want %d (hard link counted once)", a.Size, want)
	}
	got, err := s.Image("b:2")
	if err != nil || got.ID != b.ID {
		t.Fatalf("Image(b:2) = %v, %v", got.ID, err)
	}
	if _, err := s.Image("nosuch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Image(nosuch): %v, want ErrNotFound", err)
	}
	link, err := os.Readlink(filepath.Join(s.Root(), "l", readFile(t, filepath.Join(s.Root(), "layers", a.Layers[0].Hex(), "link"))))
	if err != nil || link != "../layers/"+a.Layers[0].Hex()+"/diff" {
		t.Errorf("short link -> %q, %v", link, err)
	}

	u, err := s.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	if u.LayersSize != a.Size || len(u.Images) != 2 || u.Images[0].SharedSize != a.Size || u.Images[0].UniqueSize != 0 {
		t.Errorf("usage: layers %d, images %+v", u.LayersSize, u.Images)
	}

	// Removing one image keeps the layer the other uses; removing both frees it.
	r, err := s.RemoveImage("a", false)
	if err != nil || len(r.Layers) != 0 || len(r.Images) != 1 {
		t.Fatalf("rmi a: %+v %v", r, err)
	}
	r, err = s.RemoveImage(b.ID.Short(), false)
	if err != nil || len(r.Layers) != 1 || r.Reclaimed != a.Size {
		t.Fatalf("rmi b: %+v %v", r, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "images", "blobs", "sha256")); len(ents) != 0 {
		t.Errorf("%d blobs left", len(ents))
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "l")); len(ents) != 0 {
		t.Errorf("%d short links left", len(ents))
	}
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTagAndDangling(t *testing.T) {
	s := newStore(t)
	one, _ := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("a=1"))), "x:1", "-")
	two, _ := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("a=2"))), "x:2", "-")
	if err := s.Tag("x:2", "x:1"); err != nil {
		t.Fatal(err)
	}
	images, _ := s.Images()
	names := map[Digest][]string{}
	for _, img := range images {
		names[img.ID] = img.Names
	}
	if len(names[one.ID]) != 0 || strings.Join(names[two.ID], ",") != "x:1,x:2" {
		t.Fatalf("after tag: %v", names)
	}
	if err := s.Tag("nosuch", "y"); !errors.Is(err, ErrNotFound) {
		t.Errorf("tag nosuch: %v", err)
	}
	if _, err := s.RemoveImage(two.ID.Hex(), false); err == nil {
		t.Error("rmi by id of an image with two names succeeded without force")
	}
	r, err := s.Prune()
	if err != nil || len(r.Images) != 1 || r.Images[0] != one.ID || len(r.Layers) != 1 {
		t.Fatalf("prune: %+v %v", r, err)
	}
}

func TestAmbiguousShortID(t *testing.T) {
	s := newStore(t)
	for i := 0; i < 40; i++ {
		s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("f="+strings.Repeat("x", i)))), "", "-")
	}
	images, _ := s.Images()
	seen := map[byte]bool{}
	for _, img := range images {
		c := img.ID.Hex()[0]
		if seen[c] {
			if _, err := s.Image(string(c)); !errors.Is(err, ErrAmbiguous) {
				t.Errorf("Image(%q): %v, want ErrAmbiguous", c, err)
			}
			return
		}
		seen[c] = true
	}
	t.Skip("no two ids share a first digit")
}

func TestInterruptedOperationsLeaveNothing(t *testing.T) {
	s := newStore(t)
	img, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("a=1"))), "keep", "-")
	if err != nil {
		t.Fatal(err)
	}
	// Debris as a killed process leaves it: a pending layer whose lock
	// nobody holds, a renamed layer without its committed marker, a blob
	// being written, a dangling short link.
	root := s.Root()
	os.MkdirAll(filepath.Join(root, "tmp", "DEADBEEF", "diff"), 0o755)
	os.WriteFile(filepath.Join(root, "tmp", "DEADBEEF.lock"), nil, 0o600)
	os.WriteFile(filepath.Join(root, "tmp", "ORPHAN"), nil, 0o600)
	half := filepath.Join(root, "layers", strings.Repeat("ab", 32))
	os.MkdirAll(filepath.Join(half, "diff"), 0o755)
	os.WriteFile(filepath.Join(root, "images", "blobs", "sha256", ".tmp-x-123"), []byte("part"), 0o600)
	os.Symlink("../layers/nothing/diff", filepath.Join(root, "l", "DANGLING"))

	// A pending layer of a live process must survive the cleanup.
	live, err := s.Prepare("")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()

	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, p := range []string{"tmp/DEADBEEF", "tmp/DEADBEEF.lock", "tmp/ORPHAN", "layers/" + filepath.Base(half), "images/blobs/sha256/.tmp-x-123", "l/DANGLING"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the cleanup", p)
		}
	}
	if _, err := os.Stat(live.Dir()); err != nil {
		t.Errorf("the live pending layer was removed: %v", err)
	}
	if _, err := s2.Image("keep"); err != nil {
		t.Errorf("the committed image is gone: %v", err)
	}
	if _, err := s2.Layer(img.Layers[0]); err != nil {
		t.Errorf("the committed layer is gone: %v", err)
	}
}

func TestCommitDirectoryLayer(t *testing.T) {
	s := newStore(t)
	base, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("a=1"))), "base", "-")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Prepare(base.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(p.Dir(), "b"), []byte("22"), 0o644)
	l, err := p.Commit(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Parent != base.Layers[0] || l.Size != 2 || l.ID != ChainID(base.Layers[0], l.DiffID) {
		t.Errorf("committed %+v", l)
	}
	lower := readFile(t, filepath.Join(s.Root(), "layers", l.ID.Hex(), "lower"))
	baseLink := readFile(t, filepath.Join(s.Root(), "layers", base.Layers[0].Hex(), "link"))
	if lower != "l/"+baseLink {
		t.Errorf("lower = %q, want l/%s", lower, baseLink)
	}
	if _, err := os.Stat(p.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Error("the pending directory is still there")
	}
	// Committing the same content again returns the stored layer.
	p2, _ := s.Prepare(base.Layers[0])
	os.WriteFile(filepath.Join(p2.Dir(), "b"), []byte("22"), 0o644)
	os.Chtimes(filepath.Join(p2.Dir(), "b"), time.Time{}, mtimeOf(t, filepath.Join(s.LayerDir(l.ID), "b")))
	os.Chtimes(p2.Dir(), time.Time{}, mtimeOf(t, s.LayerDir(l.ID)))
	l2, err := p2.Commit(time.Time{})
	if err != nil || l2.ID != l.ID {
		t.Errorf("recommit: %v %v, want %s", l2.ID, err, l.ID)
	}
	// A dangling layer goes with prune.
	if r, err := s.Prune(); err != nil || len(r.Layers) != 1 || r.Layers[0] != l.ID {
		t.Errorf("prune: %+v %v", r, err)
	}
}

func mtimeOf(t testing.TB, p string) time.Time {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

// TestTempFilesSurviveConcurrentCleanups: a temporary file made while
// another Store of the same root cleans up (another process's wlock) stays
// its maker's. A cleanup that found the new lock file before it was locked
// used to remove it, and the next cleanup the file (CI saw a lazy layer's
// completion lose its streamed blob that way).
func TestTempFilesSurviveConcurrentCleanups(t *testing.T) {
	s := newStore(t)
	other, err := Open(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	third, err := Open(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	stop := make(chan struct{})
	cleanups := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				cleanups <- nil
				return
			default:
			}
			if err := other.Cleanup(); err != nil {
				cleanups <- err
				return
			}
		}
	}()
	lost := 0
	for i := 0; i < 3000; i++ {
		f, done, err := s.tempFile("test")
		if err != nil {
			t.Fatal(err)
		}
		// Two more whole cleanups: the second removes a file whose lock
		// file the first took away.
		for range 2 {
			if err := third.Cleanup(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := os.Stat(f.Name()); err != nil {
			lost++
		}
		done()
	}
	close(stop)
	if err := <-cleanups; err != nil {
		t.Fatal(err)
	}
	if lost > 0 {
		t.Errorf("%d of 3000 temporary files were removed by cleanups while their makers held them", lost)
	}
}
