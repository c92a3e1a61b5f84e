package snapshotter

import (
	"reflect"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/storage"
)

// TestMountsOfEachKind checks the helper form's mounts; the served form
// (bind mounts of unions the union server serves) is tested against real
// mounts in tests/snapshotter_test.go.
func TestMountsOfEachKind(t *testing.T) {
	s := &Snapshotter{root: "/r", helper: DefaultMountHelper}
	fs := func(id string) string { return "/r/snapshots/" + id + "/fs" }
	tests := []struct {
		name      string
		snap      storage.Snapshot
		userxattr bool
		want      []mount.Mount
	}{
		{"active without parent", storage.Snapshot{Kind: snapshots.KindActive, ID: "1"}, false,
			[]mount.Mount{{Type: "bind", Source: fs("1"), Options: []string{"rw", "rbind"}}}},
		{"view without parent", storage.Snapshot{Kind: snapshots.KindView, ID: "1"}, false,
			[]mount.Mount{{Type: "bind", Source: fs("1"), Options: []string{"ro", "rbind"}}}},
		{"view of one layer", storage.Snapshot{Kind: snapshots.KindView, ID: "3", ParentIDs: []string{"2"}}, false,
			[]mount.Mount{{Type: "bind", Source: fs("2"), Options: []string{"ro", "rbind"}}}},
		{"active on layers", storage.Snapshot{Kind: snapshots.KindActive, ID: "4", ParentIDs: []string{"3", "1"}}, false,
			[]mount.Mount{{Type: MountType, Source: "unionfuse", Options: []string{
				"upperdir=" + fs("4"), "workdir=/r/snapshots/4/work", "lowerdir=" + fs("3") + ":" + fs("1")}}}},
		{"view of layers", storage.Snapshot{Kind: snapshots.KindView, ID: "5", ParentIDs: []string{"3", "2", "1"}}, false,
			[]mount.Mount{{Type: MountType, Source: "unionfuse", Options: []string{
				"lowerdir=" + fs("3") + ":" + fs("2") + ":" + fs("1")}}}},
		{"rootless", storage.Snapshot{Kind: snapshots.KindActive, ID: "2", ParentIDs: []string{"1"}}, true,
			[]mount.Mount{{Type: MountType, Source: "unionfuse", Options: []string{
				"upperdir=" + fs("2"), "workdir=/r/snapshots/2/work", "lowerdir=" + fs("1"), "userxattr"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.userxattr = tt.userxattr
			if got, err := s.mounts(tt.snap); err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("mounts:\n got %+v, %v\nwant %+v", got, err, tt.want)
			}
		})
	}
}

func TestMountHelperNamesTheType(t *testing.T) {
	s := &Snapshotter{root: "/r", helper: "unionfuse-fuse"}
	got, err := s.mounts(storage.Snapshot{Kind: snapshots.KindActive, ID: "2", ParentIDs: []string{"1"}})
	if err != nil || len(got) != 1 || got[0].Type != "fuse3.unionfuse-fuse" {
		t.Errorf("mounts with helper unionfuse-fuse: %+v, want type fuse3.unionfuse-fuse", got)
	}
}
