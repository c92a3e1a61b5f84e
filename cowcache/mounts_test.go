package cowcache

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
)

func TestMountedImageIsKept(t *testing.T) {
	s := newStore(t)
	img, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("a=1"))), "img:1", "test")
	if err != nil {
		t.Fatal(err)
	}
	const merged = "/mnt/img"
	if _, err := s.MountImage("img:1", merged); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Mounts(); err != nil || len(m) != 1 || m[0].Image != img.ID || m[0].PID != os.Getpid() {
		t.Fatalf("Mounts: %+v %v", m, err)
	}
	if _, err := s.RemoveImage("img:1", true); err == nil || !strings.Contains(err.Error(), "is mounted at "+merged) {
		t.Fatalf("RemoveImage of a mounted image: %v", err)
	}
	// Dangling and mounted: Prune keeps it.
	if _, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("b=2"))), "img:1", "test"); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Prune(); err != nil || len(r.Images) != 0 {
		t.Fatalf("Prune removed %v (%v), want nothing", r.Images, err)
	}
	// Handed over to a process that is gone (a start time that does not
	// match): the record is stale and dropped.
	start, err := procStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.HandOverMount(merged, os.Getpid(), start+1); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Mounts(); err != nil || len(m) != 0 {
		t.Fatalf("Mounts with a stale record: %+v %v", m, err)
	}
	if r, err := s.Prune(); err != nil || len(r.Images) != 1 || r.Images[0] != img.ID {
		t.Fatalf("Prune removed %v (%v), want %s", r.Images, err, img.ID.Short())
	}
	if ents, _ := os.ReadDir(s.path(mountsDir)); len(ents) != 0 {
		t.Errorf("stale records left: %v", ents)
	}
}

func TestUnmountedDropsOnlyItsOwnRecord(t *testing.T) {
	s := newStore(t)
	if _, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("a=1"))), "img:1", "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MountImage("img:1", "/m"); err != nil {
		t.Fatal(err)
	}
	if err := s.HandOverMount("/m", 1, 0); err != nil { // init, not this process
		t.Fatal(err)
	}
	if err := s.Unmounted("/m"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.mountRecord("/m")); err != nil {
		t.Errorf("Unmounted dropped another process's record: %v", err)
	}
	if _, err := s.MountImage("img:1", "/m"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unmounted("/m"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.mountRecord("/m")); !os.IsNotExist(err) {
		t.Errorf("Unmounted kept this process's record: %v", err)
	}
	if _, err := s.MountImage("nope:1", "/m"); err == nil {
		t.Error("MountImage of an unknown image succeeded")
	}
}

func TestProcStart(t *testing.T) {
	a, err := procStart(os.Getpid())
	if err != nil || a == 0 {
		t.Fatalf("procStart(self) = %d, %v", a, err)
	}
	if b, _ := procStart(os.Getpid()); b != a {
		t.Errorf("procStart changed: %d then %d", a, b)
	}
	if _, err := procStart(1 << 30); err == nil {
		t.Error("procStart of no process succeeded")
	}
	if !(Mount{PID: os.Getpid(), Start: a}).Live() || (Mount{PID: os.Getpid(), Start: a + 1}).Live() {
		t.Error("Live does not follow PID and start time")
	}
}
