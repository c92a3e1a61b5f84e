package fs

import (
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/unionfuse/unionfuse/internal/ovlfmt"
	"golang.org/x/sys/unix"
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

// An opaque marker that cannot be asked for by name is found by listing
// its directory: here a lower directory whose path leaves no room for the
// marker's name within PATH_MAX, though the directory itself can be read.
func TestAufsOpaqueMarkerBeyondPathMax(t *testing.T) {
	ov := testOverlay(t, nil, []string{"x=1"}, []string{"y=1"})
	l := ov.layers[1] // the top lower layer
	var rel string
	fd, err := unix.Dup(l.fd)
	if err != nil {
		t.Fatal(err)
	}
	for len(rel) < 4090-201 {
		name := strings.Repeat("d", min(200, 4090-len(rel)-1-len("/")))
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd, rel = next, join(rel, name)
	}
	last := strings.Repeat("e", 4090-len(rel)-1)
	if err := unix.Mkdirat(fd, last, 0o755); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Openat(fd, last, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	rel = join(rel, last)
	mk, err := unix.Openat(dfd, ovlfmt.AufsOpaque, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(mk)
	var st unix.Stat_t
	if err := l.lstat(join(rel, ovlfmt.AufsOpaque), &st); err != unix.ENAMETOOLONG {
		t.Fatalf("stat of the marker (%d bytes): %v, want ENAMETOOLONG for this test", len(rel)+len(ovlfmt.AufsOpaque)+1, err)
	}
	if !ov.isOpaque(l, rel) {
		t.Errorf("a directory %d bytes deep holding %s is not opaque", len(rel), ovlfmt.AufsOpaque)
	}
}

// A directory without layers (its node forgotten) lists empty.
func TestMergedEntriesWithoutLayers(t *testing.T) {
	ov := testOverlay(t, nil, []string{"x=1"})
	ents, errno := ov.mergedEntries(dirView{})
	if errno != 0 || len(ents) != 0 {
		t.Errorf("mergedEntries of no layers = %v, %v; want nothing", ents, errno)
	}
}
