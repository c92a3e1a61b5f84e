package cowcache

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestSaveFileRefusesNonRegularTargets: -o names a device node, a FIFO, a
// symbolic link or a directory; as docker, the save is refused and the
// target is left as it was (a rename would have replaced it with a
// regular file). A regular file is replaced.
func TestSaveFileRefusesNonRegularTargets(t *testing.T) {
	s := newStore(t)
	if _, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("hello=hello\n"))), "acme/app:1", "app.tar"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "outside")
	os.WriteFile(outside, []byte("keep"), 0o644)
	targets := map[string]func(p string) error{
		"fifo":    func(p string) error { return unix.Mkfifo(p, 0o644) },
		"symlink": func(p string) error { return os.Symlink(outside, p) },
		"dir":     func(p string) error { return os.Mkdir(p, 0o755) },
	}
	if os.Geteuid() == 0 {
		targets["chardev"] = func(p string) error { return unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))) }
	}
	for name, mk := range targets {
		p := filepath.Join(dir, name)
		if err := mk(p); err != nil {
			t.Fatal(err)
		}
		before, _ := os.Lstat(p)
		for _, f := range []ArchiveFormat{DockerArchive, OCIArchive} {
			err := s.SaveFile(p, []string{"acme/app:1"}, f)
			if err == nil || !strings.Contains(err.Error(), "cannot write to") {
				t.Errorf("save -o %s (%s): %v, want a refusal", name, f, err)
			}
			after, err := os.Lstat(p)
			if err != nil || after.Mode() != before.Mode() {
				t.Errorf("save -o %s (%s): target is now %v (%v), was %v", name, f, after.Mode(), err, before.Mode())
			}
		}
	}
	if got := readFile(t, outside); got != "keep" {
		t.Errorf("the symbolic link's target changed: %q", got)
	}
	if names := testutil.TreeOf(t, dir); len(names) != len(targets) {
		t.Errorf("temporary files left: %v", names)
	}
	reg := filepath.Join(dir, "regular")
	os.WriteFile(reg, []byte("old"), 0o644)
	if err := s.SaveFile(reg, []string{"acme/app:1"}, DockerArchive); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(reg); !fi.Mode().IsRegular() || fi.Size() < 1024 {
		t.Errorf("a regular file is not replaced by the archive: %v", fi)
	}
}

// TestSaveLayoutStaysInDir: links planted in an OCI layout directory
// cannot make save -o DIR/ write outside DIR.
func TestSaveLayoutStaysInDir(t *testing.T) {
	s := newStore(t)
	if _, err := s.Import(bytes.NewReader(testutil.Tar(t, testutil.Spec("hello=hello\n"))), "acme/app:1", "app.tar"); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "index.json"), []byte("keep"), 0o644)
	for name, plant := range map[string]func(dir string){
		"blobs":      func(dir string) { os.Symlink(outside, filepath.Join(dir, "blobs")) },
		"index.json": func(dir string) { os.Symlink(filepath.Join(outside, "index.json"), filepath.Join(dir, "index.json")) },
		"oci-layout": func(dir string) { os.Symlink(filepath.Join(outside, "oci-layout"), filepath.Join(dir, "oci-layout")) },
	} {
		dir := filepath.Join(t.TempDir(), "layout")
		os.Mkdir(dir, 0o755)
		plant(dir)
		err := s.SaveLayout(dir, []string{"acme/app:1"})
		if got := testutil.TreeOf(t, outside); len(got) != 1 || readFile(t, filepath.Join(outside, "index.json")) != "keep" {
			t.Fatalf("%s: written outside the layout (%v): %v", name, err, got)
		}
	}
	// A layout already there gets the image added.
	dir := filepath.Join(t.TempDir(), "layout")
	if err := s.SaveLayout(dir, []string{"acme/app:1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveLayout(dir, []string{"acme/app:1"}); err != nil {
		t.Fatal(err)
	}
	if idx := readFile(t, filepath.Join(dir, "index.json")); strings.Count(idx, "acme/app:1") != 4 {
		t.Errorf("index.json after two saves: %s", idx)
	}
	if _, err := s.Load(dir); err != nil {
		t.Errorf("load the layout back: %v", err)
	}
}
