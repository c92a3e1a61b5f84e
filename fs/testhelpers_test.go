package fs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// requireRoot skips tests that make whiteouts or set trusted.* xattrs.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes char 0/0 whiteouts and trusted.overlay.* xattrs")
	}
}

// buildTree creates entries under root from a compact spec, one per item:
// "d/" a directory, "d/" + "!opaque" an opaque directory, "f=text" a file,
// "w" + "!wh" a char 0/0 whiteout, "x" + "!xwh" an xattr whiteout,
// "l->target" a symlink.
func buildTree(t *testing.T, root string, spec ...string) {
	t.Helper()
	for _, s := range spec {
		var err error
		switch {
		case strings.HasSuffix(s, "/!opaque"):
			p := filepath.Join(root, strings.TrimSuffix(s, "/!opaque"))
			if err = os.MkdirAll(p, 0o755); err == nil {
				err = unix.Setxattr(p, "trusted.overlay.opaque", []byte("y"), 0)
			}
		case strings.HasSuffix(s, "/"):
			err = os.MkdirAll(filepath.Join(root, s), 0o755)
		case strings.HasSuffix(s, "!wh"):
			err = unix.Mknod(filepath.Join(root, strings.TrimSuffix(s, "!wh")), unix.S_IFCHR, 0)
		case strings.HasSuffix(s, "!xwh"):
			p := filepath.Join(root, strings.TrimSuffix(s, "!xwh"))
			if err = os.WriteFile(p, nil, 0o644); err == nil {
				err = unix.Setxattr(p, "trusted.overlay.whiteout", []byte("y"), 0)
			}
		case strings.Contains(s, "->"):
			parts := strings.SplitN(s, "->", 2)
			err = os.Symlink(parts[1], filepath.Join(root, parts[0]))
		default:
			name, text, _ := strings.Cut(s, "=")
			err = os.WriteFile(filepath.Join(root, name), []byte(text), 0o644)
		}
		if err != nil {
			t.Fatalf("build %s in %s: %v", s, root, err)
		}
	}
}

// testOverlay opens an overlay (without mounting it) over the given layer
// specs: upper first, then lowers top first.
func testOverlay(t *testing.T, upper []string, lowers ...[]string) *overlay {
	t.Helper()
	base := t.TempDir()
	cfg := Config{Upper: filepath.Join(base, "upper"), Work: filepath.Join(base, "work")}
	for _, d := range []string{cfg.Upper, cfg.Work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	buildTree(t, cfg.Upper, upper...)
	for i, spec := range lowers {
		d := filepath.Join(base, "lower"+string(rune('0'+i)))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		buildTree(t, d, spec...)
		cfg.Lowers = append(cfg.Lowers, d)
	}
	ov, err := newOverlay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ov.close)
	return ov
}

// allLayers is the layer list of the root directory.
func allLayers(ov *overlay) []int {
	ls := make([]int, len(ov.layers))
	for i := range ls {
		ls[i] = i
	}
	return ls
}
