package cowcache

import (
	"bytes"
	"github.com/unionfuse/unionfuse/internal/testutil"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A lease keeps an image from Prune and RemoveImage until it is released;
// the file of a lease whose holder died (its lock is gone) holds nothing.
func TestLease(t *testing.T) {
	s := newStore(t)
	img, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("a=a"))), "", "a.tar")
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Lease()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Add(img.ID); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Prune(); err != nil || len(r.Images) != 0 {
		t.Fatalf("prune of a leased image: %+v, %v", r, err)
	}
	if _, err := s.RemoveImage(img.ID.String(), true); err == nil || !strings.Contains(err.Error(), "running build") {
		t.Fatalf("rmi -f of a leased image: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	// A dead holder's lease: the file without its lock.
	dead := filepath.Join(s.Root(), leasesDir, "dead")
	if err := os.WriteFile(dead, []byte(img.ID.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Prune(); err != nil || len(r.Images) != 1 {
		t.Fatalf("prune after the lease ended: %+v, %v", r, err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("a dead lease's file stays: %v", err)
	}
	if l, err = s.Lease(); err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if err := l.Add(img.ID); err == nil {
		t.Error("a lease took an image that is gone")
	}
}
