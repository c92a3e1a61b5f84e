package cowcache

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// threeLayerImage builds, with go-containerregistry, an image of three
// layers: gzip, zstd and uncompressed.
func threeLayerImage(t testing.TB) v1.Image {
	t.Helper()
	layer := func(b []byte, opts ...tarball.LayerOption) v1.Layer {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	gz := layer(testutil.Tar(t, testutil.Spec("bin/", "bin/tool=#!/bin/sh\necho tool\n", "etc/", "etc/passwd=root:x:0:0::/:/bin/sh\n")))
	zs := layer(testutil.Tar(t, testutil.Spec("app/", "app/hello.txt=hello\n")), tarball.WithCompression("zstd"))
	// (LayerFromReader would leave a copy in os.TempDir: it never
	// removes the file it buffers the reader in.)
	plain := layer(testutil.Tar(t, testutil.Spec("app/", "app/bye.txt=bye\n")), tarball.WithCompressedCaching)
	img, err := mutate.AppendLayers(empty.Image, gz, zs, plain)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Config.Cmd = []string{"/bin/tool"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// digestsOf returns an image's id, DiffIDs and manifest digest.
func digestsOf(t testing.TB, img v1.Image) (id string, diffIDs []string, manifest string) {
	t.Helper()
	cn, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range cfg.RootFS.DiffIDs {
		diffIDs = append(diffIDs, d.String())
	}
	md, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return cn.String(), diffIDs, md.String()
}

func TestLoadAndSaveRoundTrip(t *testing.T) {
	src := threeLayerImage(t)
	wantID, wantDiffs, wantManifest := digestsOf(t, src)
	tmp := t.TempDir()
	tag, _ := name.NewTag("acme/tool:1.0")

	ociDir := filepath.Join(tmp, "oci")
	p, err := layout.Write(ociDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(src, layout.WithAnnotations(map[string]string{refNameAnnotation: "acme/tool:1.0"})); err != nil {
		t.Fatal(err)
	}
	ociTar := filepath.Join(tmp, "oci.tar")
	f, _ := os.Create(ociTar)
	if err := tarDir(f, ociDir); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dockerTar := filepath.Join(tmp, "docker.tar")
	if err := tarball.WriteToFile(dockerTar, tag, src); err != nil {
		t.Fatal(err)
	}

	for _, in := range []struct {
		path         string
		keepManifest bool
	}{{ociDir, true}, {ociTar, true}, {dockerTar, false}} {
		t.Run(filepath.Base(in.path), func(t *testing.T) {
			s := newStore(t)
			images, err := s.Load(in.path)
			if err != nil {
				t.Fatal(err)
			}
			if len(images) != 1 || string(images[0].ID) != wantID || len(images[0].Layers) != 3 ||
				strings.Join(images[0].Names, ",") != "acme/tool:1.0" {
				t.Fatalf("loaded %+v, want id %s named acme/tool:1.0", images, wantID)
			}
			img := images[0]
			if in.keepManifest && string(img.Manifest) != wantManifest {
				t.Errorf("manifest digest %s, want %s", img.Manifest, wantManifest)
			}
			if got := readFile(t, filepath.Join(s.LayerDirs(img)[0], "app", "bye.txt")); got != "bye\n" {
				t.Errorf("top layer: %q", got)
			}
			// Loading again adds nothing.
			before := testutil.TreeOf(t, s.Root())
			if _, err := s.Load(in.path); err != nil {
				t.Fatal(err)
			}
			if after := testutil.TreeOf(t, s.Root()); strings.Join(after, "\n") != strings.Join(before, "\n") {
				t.Errorf("a second load changed the store")
			}

			// Save in both formats; go-containerregistry reads back the same digests.
			out := filepath.Join(t.TempDir(), "out")
			if err := s.SaveFile(out+".docker.tar", []string{"acme/tool:1.0"}, DockerArchive); err != nil {
				t.Fatal(err)
			}
			back, err := tarball.ImageFromPath(out+".docker.tar", &tag)
			if err != nil {
				t.Fatal(err)
			}
			id, diffs, _ := digestsOf(t, back)
			if id != wantID || strings.Join(diffs, " ") != strings.Join(wantDiffs, " ") {
				t.Errorf("docker-archive: id %s diffIDs %v, want %s %v", id, diffs, wantID, wantDiffs)
			}
			if err := s.SaveFile(out+".oci.tar", []string{img.ID.Short()}, OCIArchive); err != nil {
				t.Fatal(err)
			}
			if err := s.SaveLayout(out+".oci", []string{"acme/tool:1.0"}); err != nil {
				t.Fatal(err)
			}
			ii, err := layout.ImageIndexFromPath(out + ".oci")
			if err != nil {
				t.Fatal(err)
			}
			im, _ := ii.IndexManifest()
			if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != string(img.Manifest) ||
				im.Manifests[0].Annotations[refNameAnnotation] != "acme/tool:1.0" {
				t.Fatalf("saved OCI index: %+v", im.Manifests)
			}
			back, _ = ii.Image(im.Manifests[0].Digest)
			id, diffs, md := digestsOf(t, back)
			if id != wantID || md != string(img.Manifest) || strings.Join(diffs, " ") != strings.Join(wantDiffs, " ") {
				t.Errorf("OCI layout: id %s manifest %s diffIDs %v", id, md, diffs)
			}
			// And the store reads its own output back, unchanged (a
			// docker-archive has no manifests: only the ids must match).
			for _, p := range []string{out + ".docker.tar", out + ".oci.tar", out + ".oci"} {
				s2 := newStore(t)
				got, err := s2.Load(p)
				if err != nil || len(got) != 1 || got[0].ID != img.ID ||
					!strings.HasSuffix(p, ".docker.tar") && got[0].Manifest != img.Manifest {
					t.Errorf("load %s: %v %+v, want %s (manifest %s)", filepath.Base(p), err, got, img.ID, img.Manifest)
				}
			}
		})
	}
}

// layoutOf writes src to an OCI layout directory and returns it with the
// path of the blob of src's second layer.
func layoutOf(t *testing.T, src v1.Image) (dir, blob string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "oci")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(src); err != nil {
		t.Fatal(err)
	}
	layers, _ := src.Layers()
	d, _ := layers[1].Digest()
	return dir, filepath.Join(dir, "blobs", "sha256", d.Hex)
}

func TestLoadRefusesCorruptBlobs(t *testing.T) {
	src := threeLayerImage(t)
	ociDir, blob := layoutOf(t, src)
	good, _ := os.ReadFile(blob)

	s := newStore(t)
	empty := testutil.TreeOf(t, s.Root())
	for what, bad := range map[string][]byte{
		"another layer": testutil.Tar(t, testutil.Spec("x=y")),
		"truncated":     good[:len(good)/2],
		"longer":        append(append([]byte{}, good...), 0),
	} {
		os.WriteFile(blob, bad, 0o644)
		if _, err := s.Load(ociDir); err == nil {
			t.Errorf("%s: loaded", what)
		}
		if got := testutil.TreeOf(t, s.Root()); strings.Join(got, "\n") != strings.Join(empty, "\n") {
			t.Errorf("%s: the store changed:\n%s", what, strings.Join(got, "\n"))
		}
	}
	os.WriteFile(blob, good, 0o644)
	os.WriteFile(filepath.Join(ociDir, "index.json"), []byte(`{"schemaVersion":2,"manifests":[]}`), 0o644)
	if _, err := s.Load(ociDir); err == nil || !strings.Contains(err.Error(), "no images") {
		t.Errorf("empty layout: %v", err)
	}
	if _, err := s.Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("empty directory: %v", err)
	}
	if _, err := s.Load(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestAddImageFailureLeavesNothing(t *testing.T) {
	s := newStore(t)
	base, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("a=1"))), "base", "a.tar")
	if err != nil {
		t.Fatal(err)
	}
	before := testutil.TreeOf(t, s.Root())
	// The index cannot be read once the new layer is committed: the
	// failure comes after the commit, as a full disk at the end would.
	idx := filepath.Join(s.Root(), "images", "index.json")
	good, _ := os.ReadFile(idx)
	os.Remove(idx)
	os.Mkdir(idx, 0o755)
	_, err = s.AppendLayer(&base, bytes.NewReader(testutil.Tar(t, testutil.Spec("b=2"))), "top", v1.History{})
	os.Remove(idx)
	os.WriteFile(idx, good, 0o644)
	if err == nil {
		t.Fatal("AppendLayer succeeded without an index")
	}
	if after := testutil.TreeOf(t, s.Root()); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("the store changed:\nbefore %v\nafter  %v", before, after)
	}
}

// loadWithin runs s.Load(p) and fails the test when it does not return
// within a few seconds (then open unblocks it).
func loadWithin(t *testing.T, s *Store, p string, unblock func()) ([]Image, error) {
	t.Helper()
	type result struct {
		images []Image
		err    error
	}
	done := make(chan result, 1)
	go func() {
		images, err := s.Load(p)
		done <- result{images, err}
	}()
	select {
	case r := <-done:
		return r.images, r.err
	case <-time.After(5 * time.Second):
		unblock()
		<-done
		t.Fatalf("load %s hangs", filepath.Base(p))
	}
	return nil, nil
}

// TestLoadSpecialFiles: a blob of a layout directory that is a FIFO is an
// error, not a wait for a writer; an archive given as a FIFO (a stream) is
// read as docker load reads it.
func TestLoadSpecialFiles(t *testing.T) {
	src := threeLayerImage(t)
	ociDir, blob := layoutOf(t, src)
	os.Remove(blob)
	if err := unix.Mkfifo(blob, 0o644); err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	openOther := func(p string) func() {
		return func() {
			if f, err := os.OpenFile(p, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
		}
	}
	if _, err := loadWithin(t, s, ociDir, openOther(blob)); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a FIFO blob: %v", err)
	}

	tag, _ := name.NewTag("acme/tool:1.0")
	var archive bytes.Buffer
	if err := tarball.Write(tag, src, &archive); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "archive")
	unix.Mkfifo(fifo, 0o644)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err == nil {
			f.Write(archive.Bytes())
			f.Close()
		}
	}()
	images, err := loadWithin(t, s, fifo, func() {
		if f, err := os.Open(fifo); err == nil {
			f.Close()
		}
	})
	if err != nil || len(images) != 1 || strings.Join(images[0].Names, ",") != "acme/tool:1.0" {
		t.Errorf("load -i FIFO: %v %+v", err, images)
	}
}

// TestLoadRefusesInvalidRepoTags: as docker load, a RepoTag that is not
// a valid name is an error (and, here, nothing is loaded).
func TestLoadRefusesInvalidRepoTags(t *testing.T) {
	src := threeLayerImage(t)
	tag, _ := name.NewTag("acme/tool:1.0")
	var archive bytes.Buffer
	if err := tarball.Write(tag, src, &archive); err != nil {
		t.Fatal(err)
	}
	// Rewrite manifest.json with a bad tag.
	var out bytes.Buffer
	tr, tw := tar.NewReader(&archive), tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(tr)
		if hdr.Name == "manifest.json" {
			b = bytes.Replace(b, []byte(`"acme/tool:1.0"`), []byte(`"Bad Name!:1"`), 1)
			hdr.Size = int64(len(b))
		}
		tw.WriteHeader(hdr)
		tw.Write(b)
	}
	tw.Close()
	p := filepath.Join(t.TempDir(), "bad.tar")
	os.WriteFile(p, out.Bytes(), 0o644)
	s := newStore(t)
	before := testutil.TreeOf(t, s.Root())
	if images, err := s.Load(p); err == nil || !strings.Contains(err.Error(), `RepoTags: invalid image name "Bad Name!:1"`) {
		t.Errorf("load with an invalid RepoTag: %v %+v", err, images)
	}
	if after := testutil.TreeOf(t, s.Root()); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("the store changed:\nbefore %v\nafter  %v", before, after)
	}
}
