package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLongPathErrorsStayShort: an error about a path deeper than PATH_MAX
// is one line, with the path shortened in the middle (it was 18 KB).
func TestLongPathErrorsStayShort(t *testing.T) {
	dir := t.TempDir()
	deep := filepath.Join(dir, strings.Repeat(strings.Repeat("d", 48)+"/", 372), "f")
	root := filepath.Join(t.TempDir(), "store")
	for _, args := range [][]string{
		{"load", "--root", root, "-i", deep},
		{"save", "--root", root, "-o", deep, "busybox"},
		{"build", "--root", root, deep},
	} {
		r := cli(t, args...)
		line := strings.TrimSuffix(r.stderr, "\n")
		if r.code == 0 || strings.Contains(line, "\n") || len(line) > 400 || !strings.Contains(line, "…") {
			t.Errorf("%s: exit %d, %d bytes on stderr: %.300q", args[0], r.code, len(r.stderr), r.stderr)
		}
	}
	if _, err := os.Stat(root); err == nil {
		os.RemoveAll(root)
	}
}
