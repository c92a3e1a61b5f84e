package testutil

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// TreeOf lists what is below dir, by path relative to dir, sorted:
// "name" for a file, "name/" for a directory and "name -> target"
// for a symbolic link. It is made for before/after comparisons.
func TreeOf(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			to, _ := os.Readlink(p)
			rel += " -> " + to
		case d.IsDir():
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	sort.Strings(out)
	return out
}
