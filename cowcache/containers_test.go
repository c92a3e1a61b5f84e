package cowcache

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestContainerRecordPaths(t *testing.T) {
	s := newStore(t)
	for _, c := range []struct{ got, want string }{
		{s.ContainerNameFile("web"), filepath.Join(s.Root(), "container-names", "web")},
		{s.ContainerExitFile("abc"), filepath.Join(s.Root(), "container-exits", "abc")},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}

// TestOldExitRecordsDropped checks that Cleanup drops the exit records
// nobody read and keeps fresh ones.
func TestOldExitRecordsDropped(t *testing.T) {
	s := newStore(t)
	old, fresh := s.ContainerExitFile("old"), s.ContainerExitFile("fresh")
	if err := os.MkdirAll(filepath.Dir(old), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("0"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	then := time.Now().Add(-exitRecordAge - time.Minute)
	if err := os.Chtimes(old, then, then); err != nil {
		t.Fatal(err)
	}
	if err := s.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("old exit record: %v, want it removed", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh exit record: %v, want it kept", err)
	}
}
