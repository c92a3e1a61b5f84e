package fs

import (
	"reflect"
	"sort"
	"syscall"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

func TestResolve(t *testing.T) {
	testutil.RequireRoot(t, testutil.ForWhiteouts)
	ov := testOverlay(t,
		[]string{"f=upper", "gone!wh", "xgone!xwh", "d/", "d/u=1", "od/!opaque", "od/o=1", "replaced=file"},
		[]string{"f=l0", "gone=l0", "xgone=l0", "d/", "d/a=1", "od/", "od/hidden=1", "replaced/", "deep/", "deep/x=1", "stop!wh"},
		[]string{"d/", "d/b=1", "only=l1", "deep/", "deep/y=1", "stop/", "stop/z=1", "empty=", "emptyx!xwh"},
	)
	root := allLayers(ov)
	tests := []struct {
		name   string
		layers []int
		errno  syscall.Errno
	}{
		{"f", []int{0}, 0},               // upper file shadows lower
		{"gone", nil, syscall.ENOENT},    // char 0/0 whiteout
		{"xgone", nil, syscall.ENOENT},   // xattr whiteout
		{"d", []int{0, 1, 2}, 0},         // directories merge
		{"od", []int{0}, 0},              // opaque stops the merge
		{"replaced", []int{0}, 0},        // a file hides the directory below
		{"deep", []int{1, 2}, 0},         // lower-only merged directory
		{"only", []int{2}, 0},            // bottom layer only
		{"stop", nil, syscall.ENOENT},    // whiteout in a middle layer
		{"empty", []int{2}, 0},           // a zero-size file without xattr is a file
		{"emptyx", nil, syscall.ENOENT},  // zero-size file with the xattr is a whiteout
		{"missing", nil, syscall.ENOENT}, // nowhere
	}
	for _, tc := range tests {
		f, errno := ov.resolve(dirView{layers: root}, tc.name)
		if errno != tc.errno || !reflect.DeepEqual(f.layers, tc.layers) {
			t.Errorf("resolve(%q) = %v, %v; want %v, %v", tc.name, f.layers, errno, tc.layers, tc.errno)
		}
	}
}

func TestMergedEntries(t *testing.T) {
	testutil.RequireRoot(t, testutil.ForWhiteouts)
	ov := testOverlay(t,
		[]string{"a=u", "b!wh", "d/", "d/x!wh", "d/new=1"},
		[]string{"a=l", "b=l", "c=l", "d/", "d/x=1", "d/y=1", "od/!opaque"},
		[]string{"c=l1", "e=l1", "b=l1", "od/", "od/hidden=1", "xw!xwh", "xd/", "xd/gone!xwh", "xd/kept=1"},
	)
	// Like the kernel, readdir filters xattr whiteouts only in directories
	// marked overlay.opaque=x; lookup hides them everywhere.
	if err := unix.Setxattr(ov.layers[2].path+"/xd", "trusted.overlay.opaque", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	names := func(layers []int, rel string) []string {
		ents, errno := ov.mergedEntries(dirView{layers: layers, rel: rel})
		if errno != 0 {
			t.Fatalf("mergedEntries(%q): %v", rel, errno)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name)
		}
		sort.Strings(out)
		return out
	}
	if got, want := names(allLayers(ov), ""), []string{"a", "c", "d", "e", "od", "xd", "xw"}; !reflect.DeepEqual(got, want) {
		t.Errorf("root lists %v, want %v", got, want)
	}
	if _, errno := ov.resolve(dirView{layers: allLayers(ov)}, "xw"); errno != syscall.ENOENT {
		t.Errorf("lookup of an xattr whiteout: %v, want ENOENT", errno)
	}
	xd, _ := ov.resolve(dirView{layers: allLayers(ov)}, "xd")
	if got, want := names(xd.layers, "xd"), []string{"kept"}; !reflect.DeepEqual(got, want) {
		t.Errorf("xd lists %v, want %v", got, want)
	}
	f, _ := ov.resolve(dirView{layers: allLayers(ov)}, "d")
	if got, want := names(f.layers, "d"), []string{"new", "y"}; !reflect.DeepEqual(got, want) {
		t.Errorf("d lists %v, want %v", got, want)
	}
	f, _ = ov.resolve(dirView{layers: allLayers(ov)}, "od")
	if got := names(f.layers, "od"); len(got) != 0 {
		t.Errorf("opaque od lists %v, want nothing", got)
	}
	empty, _ := ov.isEmptyDir(dirView{layers: f.layers, rel: "od"})
	if !empty {
		t.Error("opaque directory over content should count as empty")
	}
}

// TestMergedEntriesAcrossMissingLayers lists a directory through a view
// whose layers do not all hold it (every layer is read into one slice,
// and the listing of each is found in it), after entries given first.
func TestMergedEntriesAcrossMissingLayers(t *testing.T) {
	ov := testOverlay(t,
		[]string{"other=u"},
		[]string{"m/", "m/x=l0", "m/y=l0"},
		[]string{"m=file"},
		[]string{"m/", "m/y=l2", "m/z=l2"},
	)
	head := []listedEntry{{Name: "."}, {Name: ".."}}
	ents, errno := ov.appendMerged(head, dirView{layers: allLayers(ov), rel: "m"})
	if errno != 0 {
		t.Fatal(errno)
	}
	got := map[string]int{}
	for _, e := range ents[len(head):] {
		got[e.Name] = int(e.from)
	}
	// from is the position of the topmost layer holding the name.
	want := map[string]int{"x": 1, "y": 1, "z": 3}
	if ents[0].Name != "." || ents[1].Name != ".." || !reflect.DeepEqual(got, want) {
		t.Errorf("listed %v after %q %q, want %v after . ..", got, ents[0].Name, ents[1].Name, want)
	}
	// Held by the top layers only, and by none.
	for rel, want := range map[string][]string{"top": {"t"}, "none": nil} {
		ov := testOverlay(t, []string{"top/", "top/t=u"}, []string{"top/"}, []string{"x=1"})
		ents, errno := ov.mergedEntries(dirView{layers: allLayers(ov), rel: rel})
		var got []string
		for _, e := range ents {
			got = append(got, e.Name)
		}
		if errno != 0 || !reflect.DeepEqual(got, want) {
			t.Errorf("%s lists %v, %v; want %v", rel, got, errno, want)
		}
	}
}

func TestMergedEntriesInodeNumbersMatchLookup(t *testing.T) {
	testutil.RequireRoot(t, testutil.ForWhiteouts)
	ov := testOverlay(t, []string{"u=1"}, []string{"l=1", "d/"})
	ents, _ := ov.mergedEntries(dirView{layers: allLayers(ov)})
	for _, e := range ents {
		f, errno := ov.resolve(dirView{layers: allLayers(ov)}, e.Name)
		if errno != 0 {
			t.Fatalf("resolve %s: %v", e.Name, errno)
		}
		if ino := ov.inoOf(&f.st); ino != e.Ino {
			t.Errorf("%s: d_ino %d, st_ino %d", e.Name, e.Ino, ino)
		}
	}
}

func TestLowerHasName(t *testing.T) {
	testutil.RequireRoot(t, testutil.ForWhiteouts)
	ov := testOverlay(t, []string{"up=1", "both=1"}, []string{"both=1", "low=1", "wh!wh"}, []string{"wh=1"})
	for name, want := range map[string]bool{"up": false, "both": true, "low": true, "wh": false, "none": false} {
		got, errno := ov.lowerHasName(dirView{layers: allLayers(ov)}, name)
		if errno != 0 || got != want {
			t.Errorf("lowerHasName(%q) = %v, %v; want %v", name, got, errno, want)
		}
	}
}
