package builder

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/internal/testutil"
)

func TestCopySemantics(t *testing.T) {
	ctx := t.TempDir()
	for name, body := range map[string]string{
		"a.txt": "a", "b.txt": "b", "dir/x": "x", "dir/sub/y": "y", "dir/skip.log": "no", "secret/key": "no",
		".dockerignore": "secret\n**/*.log\n",
	} {
		os.MkdirAll(filepath.Join(ctx, filepath.Dir(name)), 0o755)
		os.WriteFile(filepath.Join(ctx, name), []byte(body), 0o644)
	}
	os.Symlink("x", filepath.Join(ctx, "dir/link"))
	root, err := openContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		srcs []string
		dest string
		want []string
	}{
		{[]string{"dir"}, "/app", []string{"app/", "app/link -> x", "app/sub/", "app/sub/y", "app/x"}},
		{[]string{"a.txt"}, "/app", []string{"app"}},
		{[]string{"a.txt"}, "/app/", []string{"app/", "app/a.txt"}},
		{[]string{"*.txt"}, "/t/", []string{"t/", "t/a.txt", "t/b.txt"}},
		{[]string{"."}, "/", []string{".dockerignore", "a.txt", "b.txt", "dir/", "dir/link -> x", "dir/sub/", "dir/sub/y", "dir/x"}},
	} {
		srcs, err := root.sources(c.srcs)
		if err != nil {
			t.Errorf("%v: %v", c.srcs, err)
			continue
		}
		rootfs := t.TempDir()
		if err := copyInto(rootfs, srcs, copyOpts{dest: c.dest}); err != nil {
			t.Errorf("%v -> %s: %v", c.srcs, c.dest, err)
			continue
		}
		if got := testutil.TreeOf(t, rootfs); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%v -> %s:\n got %v\nwant %v", c.srcs, c.dest, got, c.want)
		}
	}
	if _, err := root.sources([]string{"secret/key"}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("an ignored source: %v", err)
	}
	// A symbolic link of the root leads inside the root, never out.
	rootfs := t.TempDir()
	os.Symlink("/", filepath.Join(rootfs, "escape"))
	srcs, _ := root.sources([]string{"a.txt"})
	if err := copyInto(rootfs, srcs, copyOpts{dest: "/escape/tmp/"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "tmp/a.txt")); err != nil {
		t.Errorf("copy through an absolute link of the root: %v", err)
	}
	// The digest follows content, not times.
	d1, _ := digestSources(srcs)
	os.Chtimes(filepath.Join(ctx, "a.txt"), time0, time0)
	srcs, _ = root.sources([]string{"a.txt"})
	d2, _ := digestSources(srcs)
	os.WriteFile(filepath.Join(ctx, "a.txt"), []byte("A"), 0o644)
	srcs, _ = root.sources([]string{"a.txt"})
	d3, _ := digestSources(srcs)
	if d1 != d2 || d2 == d3 {
		t.Errorf("digests: touched %v, changed %v", d1 == d2, d2 != d3)
	}
}

var time0 = time.Unix(0, 0)
