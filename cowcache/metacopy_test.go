package cowcache

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMetacopyUpper: a metacopy file in an upper directory (renamed, so
// with a redirect, in a renamed directory) goes into the layer with the
// data of the lower file, and counts its blocks in the size.
func TestMetacopyUpper(t *testing.T) {
	lower, upper := t.TempDir(), t.TempDir()
	data := bytes.Repeat([]byte("data\n"), 20000)
	if err := os.MkdirAll(filepath.Join(lower, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "d/orig"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(upper, "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	mc := filepath.Join(upper, "e/moved")
	if err := os.WriteFile(mc, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(mc, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	set := func(p, name, val string) {
		if err := unix.Lsetxattr(p, name, []byte(val), 0); err != nil {
			t.Skipf("cannot set %s: %v", name, err)
		}
	}
	set(mc, "trusted.overlay.metacopy", "")
	set(mc, "trusted.overlay.redirect", "orig")
	set(filepath.Join(upper, "e"), "trusted.overlay.redirect", "d")

	var buf bytes.Buffer
	if err := WriteUpperTar(&buf, upper, lower); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	found := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name != "e/moved" {
			continue
		}
		found = true
		got, _ := io.ReadAll(tr)
		if !bytes.Equal(got, data) {
			t.Errorf("e/moved holds %d bytes, not the lower data (%d)", len(got), len(data))
		}
		for k := range hdr.PAXRecords {
			if strings.Contains(k, "overlay.") {
				t.Errorf("e/moved carries %s", k)
			}
		}
	}
	if !found {
		t.Fatal("no e/moved in the layer")
	}
	if err := WriteUpperTar(io.Discard, upper); err == nil {
		t.Error("packing a metacopy file without its lower layers works")
	}
	size, err := DirSize(upper)
	if err != nil {
		t.Fatal(err)
	}
	if size >= int64(len(data)) {
		t.Errorf("DirSize = %d: counts the metacopy file's data", size)
	}
}
