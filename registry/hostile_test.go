package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/unionfuse/unionfuse/cowcache"
)

// TestPullHostileLayer: a layer that load would refuse is refused when
// pulled, naming the entry, and nothing is stored.
func TestPullHostileLayer(t *testing.T) {
	host := testRegistry(t, nil)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "../escape", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", HostPlatform().Architecture
	img, _ = mutate.ConfigFile(img, cf)
	writeImage(t, host+"/evil:1", img)
	s := testStore(t)
	_, err = Pull(context.Background(), s, mustParse(t, host+"/evil:1"), PullOptions{})
	var ee *cowcache.EntryError
	if !errors.As(err, &ee) || !errors.Is(err, cowcache.ErrUnsafePath) {
		t.Errorf("pull of a layer with ../escape: %v", err)
	}
	checkEmpty(t, s)
}

// rawManifest is a manifest of any content and media type, to put.
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.b, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// TestPullBadManifests: schema 1, malformed, too large.
func TestPullBadManifests(t *testing.T) {
	// A malformed manifest cannot be put: the registry serves one.
	host := testRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/manifests/malformed") {
				w.Header().Set("Content-Type", string(types.OCIManifestSchema1))
				w.Write([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":`))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	for _, tc := range []struct {
		tag  string
		m    rawManifest
		want string
	}{
		{"schema1", rawManifest{[]byte(`{"schemaVersion":1,"name":"x","tag":"1","fsLayers":[]}`), types.DockerManifestSchema1Signed}, "schema-1"},
		{"malformed", rawManifest{}, "manifest"},
		{"large", rawManifest{append([]byte(`{"schemaVersion":2,"x":"`), append(bytes.Repeat([]byte("a"), maxManifestSize), `"}`...)...), types.OCIManifestSchema1}, "more than"},
	} {
		r, _ := name.ParseReference(host + "/bad:" + tc.tag)
		if tc.m.b != nil {
			if err := remote.Put(r, tc.m); err != nil {
				t.Fatalf("put %s: %v", tc.tag, err)
			}
		}
		s := testStore(t)
		_, err := Pull(context.Background(), s, mustParse(t, host+"/bad:"+tc.tag), PullOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pull of a %s manifest: %v, want %q", tc.tag, err, tc.want)
		}
		checkEmpty(t, s)
	}
}
