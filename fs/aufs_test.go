package fs

import (
	"reflect"
	"sort"
	"syscall"
	"testing"
)

func TestAufsWhiteoutsInLowerLayers(t *testing.T) {
	ov := testOverlay(t,
		[]string{"up=1", ".wh.up2="}, // upper is kernel format only: a .wh. file is a file
		[]string{".wh.gone=", "od/", "od/.wh..wh..opq=", "od/mine=1", "d/", "d/.wh.b=", "d/.wh..wh.plnk/"},
		[]string{"gone=1", "up2=1", "od/", "od/hidden=1", "d/", "d/a=1", "d/b=1"},
	)
	root := allLayers(ov)
	for name, want := range map[string]syscall.Errno{
		"gone": syscall.ENOENT, ".wh.gone": syscall.ENOENT, "up2": 0, ".wh.up2": 0, "od": 0, "d": 0,
	} {
		if _, errno := ov.resolve(dirView{layers: root}, name); errno != want {
			t.Errorf("resolve(%q) = %v, want %v", name, errno, want)
		}
	}
	od, _ := ov.resolve(dirView{layers: root}, "od")
	if !reflect.DeepEqual(od.layers, []int{1}) {
		t.Errorf("od merges layers %v; .wh..wh..opq should stop at layer 1", od.layers)
	}
	list := func(layers []int, rel string) []string {
		ents, errno := ov.mergedEntries(dirView{layers: layers, rel: rel})
		if errno != 0 {
			t.Fatal(errno)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name)
		}
		sort.Strings(names)
		return names
	}
	if got, want := list(root, ""), []string{".wh.up2", "d", "od", "up", "up2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("root lists %v, want %v", got, want)
	}
	if got, want := list(od.layers, "od"), []string{"mine"}; !reflect.DeepEqual(got, want) {
		t.Errorf("od lists %v, want %v", got, want)
	}
	d, _ := ov.resolve(dirView{layers: root}, "d")
	if got, want := list(d.layers, "d"), []string{"a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("d lists %v, want %v", got, want)
	}
}
