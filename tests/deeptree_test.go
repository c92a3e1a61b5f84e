package tests

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unionfuse/unionfuse/internal/dirwalk"
	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// deepDepth and deepName make a tree deeper than PATH_MAX (372 × 49 bytes
// is about 18 KB): no absolute path reaches its bottom.
const deepDepth = 372

var deepName = strings.Repeat("d", 48)

// TestDeepTree: a container whose layer holds a tree deeper than PATH_MAX
// breaks neither the store's commands for the other containers nor its
// own: system df measures it, diff lists it, commit packs it. (The tree is
// made in the container's upper directory from outside: the mount itself
// refuses names deeper than PATH_MAX.)
func TestDeepTree(t *testing.T) {
	e := newContainerEnv(t, requireContainers(t, false, false))
	mustSucceed(t, "run deep", e.u("run", "--name", "deep", "busybox", "true"))
	mustSucceed(t, "run other", e.u("run", "--name", "other", "busybox", "touch", "/other"))
	id := strings.TrimSpace(e.u("ps", "-aq", "--no-trunc", "-f", "name=deep").stdout)
	if id == "" {
		t.Fatal("no id for the container deep")
	}
	unix.Close(testutil.MkDeep(t, filepath.Join(e.store, "containers", id, "diff"), deepName, deepDepth, "bottom\n"))

	r := e.u("system", "df", "-v")
	mustSucceed(t, "system df", r)
	if !strings.Contains(r.stdout, id[:12]) {
		t.Errorf("system df -v lists no container %s:\n%s", id[:12], r.stdout)
	}
	r = e.u("diff", "deep")
	mustSucceed(t, "diff", r)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	last := lines[len(lines)-1]
	if len(lines) != deepDepth+1 || lines[0] != "A /"+deepName || !strings.HasSuffix(last, "/"+deepName+"/f") {
		t.Errorf("diff deep: %d lines, first %.80q, last ends %q", len(lines), lines[0], last[max(0, len(last)-60):])
	}
	expect(t, "diff other", e.u("diff", "other"), 0, "A /other\n", "")

	mustSucceed(t, "commit", e.u("commit", "deep", "deep:1"))
	mustSucceed(t, "commit other", e.u("commit", "other", "other:1"))
	// The committed layer holds the file at the bottom.
	found := false
	dirwalk.Walk(filepath.Join(e.store, "layers"), func(en *dirwalk.Entry) error {
		if en.Name == "f" && strings.Count(en.Path, deepName) == deepDepth {
			f, err := en.Open()
			if err == nil {
				b, _ := io.ReadAll(f)
				f.Close()
				found = found || string(b) == "bottom\n"
			}
		}
		return nil
	})
	if !found {
		t.Error("no layer holds the deep file")
	}
	mustSucceed(t, "rm", e.u("rm", "deep", "other"))
	mustSucceed(t, "rmi", e.u("rmi", "deep:1", "other:1"))
}
