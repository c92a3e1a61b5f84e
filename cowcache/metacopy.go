package cowcache

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/unionfuse/unionfuse/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// Metacopy files (overlay metacopy=on) in an upper directory hold the
// metadata of a file whose data is still in a lower layer: a sparse file
// of the right size, marked overlay.metacopy, perhaps with an
// overlay.redirect to where the data lives. A layer made from such an
// upper takes the data from the lower layers, so that the layer stands on
// its own; and its size counts what du(1) sees of the upper, the blocks
// of the metacopy file, not the size of data it does not hold.

// isMetacopy reports whether the regular file p carries overlay.metacopy
// (trusted or user).
func isMetacopy(p string) bool {
	for _, x := range []*ovlfmt.Xattrs{ovlfmt.Trusted, ovlfmt.User} {
		if _, err := unix.Lgetxattr(p, x.Metacopy, nil); err == nil {
			return true
		}
	}
	return false
}

// redirectOf returns the overlay.redirect of p, if any.
func redirectOf(p string) (string, bool) {
	for _, x := range []*ovlfmt.Xattrs{ovlfmt.Trusted, ovlfmt.User} {
		buf := make([]byte, 4096)
		if n, err := unix.Lgetxattr(p, x.Redirect, buf); err == nil && n > 0 {
			return string(buf[:n]), true
		}
	}
	return "", false
}

// redirected returns the path below which rel, a path in the directory
// tree root, finds its lower content: each component's redirect, if it has
// one, replaces the path so far (the overlay's lookup down one layer).
func redirected(root, rel string) string {
	cur, walked := "", ""
	for _, c := range strings.Split(rel, "/") {
		walked = path.Join(walked, c)
		r, ok := redirectOf(filepath.Join(root, walked))
		switch {
		case !ok:
			cur = path.Join(cur, c)
		case r[0] == '/':
			cur = strings.TrimPrefix(path.Clean(r), "/")
		default:
			cur = path.Join(cur, r) // a name in the same directory
		}
	}
	return cur
}

// metacopyData opens the data of the metacopy file rel of the upper
// directory upper, in lowers (top first): see metacopySource.
func metacopyData(upper, rel string, lowers []string) (*os.File, error) {
	src, err := metacopySource(upper, rel, lowers)
	if err != nil {
		return nil, err
	}
	return os.Open(src)
}

// metacopySource returns where the data of the metacopy file rel of the
// upper directory upper is, in lowers (top first): the first regular file
// at its redirected path that is not itself a metacopy file, following the
// redirects of metacopy files on the way down.
func metacopySource(upper, rel string, lowers []string) (string, error) {
	p := redirected(upper, rel)
	for _, l := range lowers {
		full := filepath.Join(l, p)
		var st unix.Stat_t
		if unix.Lstat(full, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		if !isMetacopy(full) {
			return full, nil
		}
		p = redirected(l, p)
	}
	return "", fmt.Errorf("/%s: a metacopy file whose data is in no lower layer", rel)
}

// diskBytes returns what a file counts in a layer's size: its apparent
// size, or the blocks it holds if it is a metacopy file (sparse: fewer
// blocks than its size).
func diskBytes(p string, size, blocks int64) int64 {
	if blocks*512 < size && isMetacopy(p) {
		return blocks * 512
	}
	return size
}
