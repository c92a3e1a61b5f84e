package registry

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/unionfuse/unionfuse/cowcache"
)

// testRegistry serves go-containerregistry's in-memory registry on
// 127.0.0.1 (insecure by default, as docker) and returns its host:port.
// wrap, when not nil, sees every request first.
func testRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// testImage makes a random image of n layers for linux/arch.
func testImage(t *testing.T, n int, arch string) v1.Image {
	t.Helper()
	img, err := random.Image(2048, int64(n))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func writeImage(t *testing.T, ref string, img v1.Image) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func testStore(t *testing.T) *cowcache.Store {
	t.Helper()
	s, err := cowcache.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// events records progress.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) Layer(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) count(st Status) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.all {
		if ev.Status == st {
			n++
		}
	}
	return n
}

func mustParse(t *testing.T, s string) Reference {
	t.Helper()
	r, err := ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPullAndUpToDate(t *testing.T) {
	host := testRegistry(t, nil)
	img := testImage(t, 3, HostPlatform().Architecture)
	md := writeImage(t, host+"/app:1.0", img)
	s := testStore(t)
	ev := &events{}
	res, err := Pull(context.Background(), s, mustParse(t, host+"/app:1.0"), PullOptions{Options: Options{Progress: ev}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != md || res.UpToDate {
		t.Errorf("pull: digest %s up to date %v, want %s false", res.Digest, res.UpToDate, md)
	}
	if got := res.Image.Names; len(got) != 1 || got[0] != host+"/app:1.0" {
		t.Errorf("names %v", got)
	}
	id, _ := img.ConfigName()
	if string(res.Image.ID) != id.String() {
		t.Errorf("image id %s, want %s", res.Image.ID, id)
	}
	if ev.count(PullComplete) != 3 || ev.count(PullingFSLayer) != 3 {
		t.Errorf("events: %+v", ev.all)
	}
	rd, err := s.RepoDigests()
	if err != nil || len(rd[res.Image.Manifest]) != 1 || rd[res.Image.Manifest][0] != host+"/app@"+md {
		t.Errorf("repo digests %v %v", rd, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "downloads")); len(ents) != 0 {
		t.Errorf("download area not emptied: %d entries", len(ents))
	}
	ev2 := &events{}
	res, err = Pull(context.Background(), s, mustParse(t, host+"/app:1.0"), PullOptions{Options: Options{Progress: ev2}})
	if err != nil || !res.UpToDate || ev2.count(AlreadyExists) != 3 || ev2.count(Downloading) != 0 {
		t.Errorf("second pull: %v up to date %v, events %+v", err, res.UpToDate, ev2.all)
	}
}

func TestPullIndexPlatform(t *testing.T) {
	host := testRegistry(t, nil)
	amd, arm := testImage(t, 1, "amd64"), testImage(t, 2, "arm64")
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}})
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	r, _ := name.ParseReference(host + "/multi:latest")
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	for _, tc := range []struct {
		platform string
		want     v1.Image
	}{{"linux/amd64", amd}, {"linux/arm64", arm}, {"linux/arm64/v8", arm}} {
		p, err := ParsePlatform(tc.platform)
		if err != nil {
			t.Fatal(err)
		}
		s := testStore(t)
		res, err := Pull(context.Background(), s, mustParse(t, host+"/multi"), PullOptions{Platform: &p})
		if err != nil {
			t.Fatalf("%s: %v", tc.platform, err)
		}
		id, _ := tc.want.ConfigName()
		if string(res.Image.ID) != id.String() || res.Digest != idxDigest.String() {
			t.Errorf("%s: got image %s digest %s, want %s %s", tc.platform, res.Image.ID, res.Digest, id, idxDigest)
		}
	}
	p, _ := ParsePlatform("linux/s390x")
	s := testStore(t)
	_, err := Pull(context.Background(), s, mustParse(t, host+"/multi"), PullOptions{Platform: &p})
	if err == nil || !strings.Contains(err.Error(), "no matching manifest for linux/s390x") {
		t.Errorf("pull of a platform the index lacks: %v", err)
	}
	checkEmpty(t, s)
}

// checkEmpty fails t unless the store has no image and no layer.
func checkEmpty(t *testing.T, s *cowcache.Store) {
	t.Helper()
	images, err := s.Images()
	layers, err2 := s.Layers()
	if err != nil || err2 != nil || len(images) != 0 || len(layers) != 0 {
		t.Errorf("store not empty: %d images, %d layers (%v %v)", len(images), len(layers), err, err2)
	}
}

// corrupt wraps a registry so that the blob digest d comes with one
// byte changed.
func corrupt(d string) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+d) {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			b := rec.Body.Bytes()
			if len(b) > 0 {
				b[len(b)/2] ^= 0xff
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(b)
		})
	}
}

func TestPullCorruptBlob(t *testing.T) {
	img := testImage(t, 2, HostPlatform().Architecture)
	ls, _ := img.Layers()
	bad, _ := ls[1].Digest()
	host := testRegistry(t, corrupt(bad.String()))
	writeImage(t, host+"/app:1", img)
	s := testStore(t)
	_, err := Pull(context.Background(), s, mustParse(t, host+"/app:1"), PullOptions{})
	if !errors.Is(err, cowcache.ErrDigestMismatch) || !strings.Contains(err.Error(), bad.Hex[:12]) {
		t.Fatalf("pull of a corrupt blob: %v", err)
	}
	checkEmpty(t, s)
}

func TestPullErrors(t *testing.T) {
	host := testRegistry(t, nil)
	s := testStore(t)
	for _, tc := range []struct{ ref, want string }{
		{host + "/nothing:1", "not found"},
		{"127.0.0.1:1/app:1", "connection refused"},
		{"no-such-host.invalid/app:1", "unknown host"},
	} {
		_, err := Pull(context.Background(), s, mustParse(t, tc.ref), PullOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("pull %s: %v, want %q", tc.ref, err, tc.want)
		}
	}
	checkEmpty(t, s)
}

// remoteDesc reads a registry's manifest in tests.
type remoteDesc struct{ d *remote.Descriptor }

// manifest returns the media types of the manifest's layers.
func (r *remoteDesc) manifest(t *testing.T) ([]types.MediaType, error) {
	t.Helper()
	img, err := r.d.Image()
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []types.MediaType
	for _, l := range m.Layers {
		out = append(out, l.MediaType)
	}
	return out, nil
}

func v1History(step string) v1.History { return v1.History{CreatedBy: step} }
