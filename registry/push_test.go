package registry

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/internal/testutil"
)

// twoLayerImage imports base (one layer) and app (base + one layer).
func twoLayerImage(t *testing.T, s *cowcache.Store) cowcache.Image {
	t.Helper()
	base, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("base=base\n"))), "base:1", "base.tar")
	if err != nil {
		t.Fatal(err)
	}
	app, err := s.AppendLayer(&base, bytes.NewReader(testutil.Tar(t, testutil.Spec("app=app\n"))), "app:1", v1History("app"))
	if err != nil {
		t.Fatal(err)
	}
	return app
}

func TestPushPullRoundTrip(t *testing.T) {
	host := testRegistry(t, nil)
	s := testStore(t)
	app := twoLayerImage(t, s)
	if err := s.Tag("app:1", host+"/app:1"); err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	res, err := Push(context.Background(), s, mustParse(t, host+"/app:1"), PushOptions{Options: Options{Progress: ev}})
	if err != nil {
		t.Fatal(err)
	}
	if ev.count(Preparing) != 2 || ev.count(Pushed) != 2 {
		t.Errorf("events %+v", ev.all)
	}
	r, _ := name.ParseReference(host + "/app:1")
	desc, err := remote.Get(r)
	if err != nil || desc.Digest.String() != res.Digest || desc.Size != res.Size {
		t.Fatalf("registry has %v (%v), push said %s %d", desc, err, res.Digest, res.Size)
	}
	m, _ := (&remoteDesc{desc}).manifest(t)
	for _, l := range m {
		if l != types.OCILayer {
			t.Errorf("pushed layer media type %s, want gzip", l)
		}
	}
	// Again: nothing to send. To another repository: mounted.
	ev = &events{}
	if _, err := Push(context.Background(), s, mustParse(t, host+"/app:1"), PushOptions{Options: Options{Progress: ev}}); err != nil || ev.count(LayerExists) != 2 {
		t.Errorf("second push: %v %+v", err, ev.all)
	}
	// (go-containerregistry's registry keeps blobs for all repositories:
	// they exist there; tests/ checks mounts with a real registry.)
	s.Tag("app:1", host+"/other:1")
	ev = &events{}
	if _, err := Push(context.Background(), s, mustParse(t, host+"/other:1"), PushOptions{Options: Options{Progress: ev}}); err != nil || ev.count(MountedFrom)+ev.count(LayerExists) != 2 {
		t.Errorf("push to another repository: %v %+v", err, ev.all)
	}
	// Pulled into another store: the same image id.
	s2 := testStore(t)
	pr, err := Pull(context.Background(), s2, mustParse(t, host+"/app:1"), PullOptions{})
	if err != nil || pr.Image.ID != app.ID || pr.Digest != res.Digest {
		t.Errorf("pull back: %v id %s digest %s, want %s %s", err, pr.Image.ID, pr.Digest, app.ID, res.Digest)
	}
	// zstd, then what is pulled pushes back with the same digest.
	s.Tag("app:1", host+"/z:1")
	zres, err := Push(context.Background(), s, mustParse(t, host+"/z:1"), PushOptions{Compression: "zstd"})
	if err != nil {
		t.Fatal(err)
	}
	s3 := testStore(t)
	zp, err := Pull(context.Background(), s3, mustParse(t, host+"/z:1"), PullOptions{})
	if err != nil || zp.Image.ID != app.ID {
		t.Fatalf("pull of zstd: %v", err)
	}
	s3.Tag(host+"/z:1", host+"/z:2")
	again, err := Push(context.Background(), s3, mustParse(t, host+"/z:2"), PushOptions{})
	if err != nil || again.Digest != zres.Digest {
		t.Errorf("push of a pulled image: %v digest %s, want %s", err, again.Digest, zres.Digest)
	}
}

func TestPushMissingImage(t *testing.T) {
	host := testRegistry(t, nil)
	s := testStore(t)
	_, err := Push(context.Background(), s, mustParse(t, host+"/nope:1"), PushOptions{})
	if !errors.Is(err, ErrNoSuchImage) {
		t.Errorf("push of a missing image: %v", err)
	}
}
