package snapshotter

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
)

func TestNewRefusesRootThatBreaksOptions(t *testing.T) {
	for _, bad := range []string{"a,b", "a:b"} {
		root := t.TempDir() + "/" + bad
		if s, err := New(root, WithMountHelper(DefaultMountHelper)); err == nil {
			s.Close()
			t.Errorf("New(%q) took a root that cannot go into mount options", root)
		} else if !strings.Contains(err.Error(), "mount options") {
			t.Errorf("New(%q): %v", root, err)
		}
	}
}

// TestLifecycleLeavesNoDirectory checks, without mounting, that each
// snapshot has its directory while it exists and none after, and that
// Cleanup deletes what a crash would leave.
func TestLifecycleLeavesNoDirectory(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir(), WithMountHelper(DefaultMountHelper))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Prepare(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "layer", "a"); err != nil {
		t.Fatal(err)
	}
	if d := dirs(t, s); len(d) != 1 {
		t.Fatalf("snapshot directories after one commit: %v", d)
	} else if _, err := os.Stat(s.workPath(d[0])); !os.IsNotExist(err) {
		t.Errorf("the committed layer %s kept its workdir: %v", d[0], err)
	}
	if _, err := s.Prepare(ctx, "b", "layer"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "b", "layer"); err == nil {
		t.Error("Prepare of an existing key succeeded")
	}
	if err := s.Remove(ctx, "layer"); err == nil {
		t.Error("Remove of a layer with a child succeeded")
	}
	if n := len(dirs(t, s)); n != 2 {
		t.Errorf("%d snapshot directories for 2 snapshots: %v", n, dirs(t, s))
	}
	for _, key := range []string{"b", "layer"} {
		if err := s.Remove(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if d := dirs(t, s); len(d) != 0 {
		t.Errorf("snapshot directories left after removing all: %v", d)
	}
	crash, err := s.newDir(snapshots.KindActive)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if d := dirs(t, s); len(d) != 0 {
		t.Errorf("Cleanup left %v (a crash left %s)", d, crash)
	}
}

// dirs lists the directories under s's snapshots/.
func dirs(t *testing.T, s *Snapshotter) []string {
	t.Helper()
	ents, err := os.ReadDir(s.snapshotsDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
