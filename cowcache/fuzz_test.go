package cowcache

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzUnpackLayer feeds arbitrary bytes to the archive reader. Whatever
// the input, unpacking must not panic, must not write outside its
// directory, and must either succeed or fail with nothing escaping.
// Findings are kept in testdata/fuzz/FuzzUnpackLayer as regression tests.
func FuzzUnpackLayer(f *testing.F) {
	f.Add(tarOf(f, dir("a"), file("a/b", "x"), symlink("a/c", "../../etc"), hardlink("a/d", "a/b")))
	f.Add(gzipOf(tarOf(f, file(".wh.x", ""), dir("d"), file("d/.wh..wh..opq", ""))))
	f.Add(tarOf(f, symlink("s", "/"), file("s/evil", "x")))
	f.Add(tarOf(f, file("../evil", "x")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		dst := filepath.Join(base, "layer")
		if err := os.Mkdir(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		done := make(chan struct{})
		go func() {
			_, err = unpackLayer(dst, bytes.NewReader(data), unpackOptions{allowDevices: false, noChown: true})
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			panic("unpackLayer hangs")
		}
		var ee *EntryError
		if err != nil && errors.As(err, &ee) && ee.Entry == "" && !strings.Contains(err.Error(), "entry") {
			t.Errorf("entry error without an entry: %v", err)
		}
		ents, _ := os.ReadDir(base)
		for _, e := range ents {
			if e.Name() != "layer" {
				t.Fatalf("unpacking wrote %s outside the layer (err %v)", e.Name(), err)
			}
		}
	})
}
