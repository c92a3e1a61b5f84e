package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// layerFds counts the descriptors of process pid that name something
// below dir (the layers of a union), but not below except (the merged
// directory, where go-fuse opens a file once while it mounts).
func layerFds(t *testing.T, pid int, dir string, except ...string) int {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatalf("descriptors of %d: %v", pid, err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil || !strings.HasPrefix(target, dir+"/") {
			continue
		}
		if !slices.ContainsFunc(except, func(x string) bool { return target == x || strings.HasPrefix(target, x+"/") }) {
			n++
		}
	}
	return n
}

// TestFailedRemovalKeepsNoDescriptor: a rename or rmdir that fails keeps
// no descriptor of the directory it would have replaced (the daemon kept
// one, for an orphan that never was, until the kernel forgot the node).
func TestFailedRemovalKeepsNoDescriptor(t *testing.T) {
	testutil.RequireFuse(t)
	l := cliLayout(t)
	mustOK(t, "mount", cli(t, "mount", l.Lowers[0], l.Upper, l.Work, l.Merged))
	rec := daemonOf(t, l.Merged)
	defer umountCLI(t, l.Merged, rec)
	dir := filepath.Dir(l.Upper)
	m := func(p string) string { return filepath.Join(l.Merged, p) }
	for _, d := range []string{"a", "b", "b/c"} {
		if err := os.Mkdir(m(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	before := layerFds(t, rec.PID, dir)
	if err := unix.Rename(m("a"), m("b")); err != unix.ENOTEMPTY && err != unix.EEXIST {
		t.Fatalf("rename over a full directory: %v", err)
	}
	if err := unix.Rename(m("b/c"), m("f1")); err != unix.ENOTDIR {
		t.Fatalf("rename of a directory over a file: %v", err)
	}
	if after := layerFds(t, rec.PID, dir); after != before {
		t.Errorf("the daemon holds %d descriptors of the layers after failed renames, %d before", after, before)
	}
}
