package cowcache

import (
	"bytes"
	"os"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
)

func TestBuildCache(t *testing.T) {
	s := newStore(t)
	base, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("a=a"))), "base", "base.tar")
	if err != nil {
		t.Fatal(err)
	}
	step, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("b=b"))), "", "step.tar")
	if err != nil {
		t.Fatal(err)
	}
	k := CacheKey{Parent: base.ID, Step: "COPY . /app", Sources: FromBytes([]byte("ctx"))}
	if _, ok, err := s.CachedImage(k); ok || err != nil {
		t.Fatalf("empty cache: hit %v, %v", ok, err)
	}
	if err := s.PutCache(k, step.ID); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.CachedImage(k)
	if !ok || err != nil || got.ID != step.ID {
		t.Fatalf("CachedImage = %s, %v, %v; want %s", got.ID.Short(), ok, err, step.ID.Short())
	}
	for _, other := range []CacheKey{
		{Parent: step.ID, Step: k.Step, Sources: k.Sources},
		{Parent: base.ID, Step: "COPY . /app2", Sources: k.Sources},
		{Parent: base.ID, Step: k.Step, Sources: FromBytes([]byte("ctx2"))},
		{Parent: base.ID, Step: k.Step},
	} {
		if _, ok, _ := s.CachedImage(other); ok {
			t.Errorf("%+v hits the entry of %+v", other, k)
		}
	}
	// Reopening the store keeps the cache.
	s2, err := Open(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, ok, _ := s2.CachedImage(k); !ok {
		t.Error("the cache did not survive reopening the store")
	}
	// An entry whose image is gone is a miss.
	if _, err := s.RemoveImage(step.ID.String(), false); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.CachedImage(k); ok || err != nil {
		t.Errorf("entry of a removed image: hit %v, %v", ok, err)
	}
	// A corrupt entry is a miss, not an error.
	os.WriteFile(s.path(cacheDir, k.digest().Hex()), []byte("{"), 0o644)
	if _, ok, err := s.CachedImage(k); ok || err != nil {
		t.Errorf("corrupt entry: hit %v, %v", ok, err)
	}
}
