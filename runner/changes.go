package runner

import (
	"errors"
	"os"

	"github.com/unionfuse/unionfuse/internal/dirwalk"
	"github.com/unionfuse/unionfuse/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// Change is one line of `unionfuse diff`, as docker diff prints it.
type Change struct {
	Kind byte   // 'A' added, 'C' changed, 'D' deleted
	Path string // absolute inside the container
}

// String returns "A /path".
func (c Change) String() string { return string(c.Kind) + " " + c.Path }

// Changes lists what the container's layer changes in its image: each
// path of the layer, D for a whiteout, C for a path that exists below
// (the init layer included, as Docker's), A for a new one; parents come
// before their children, in name order.
func (r *Runner) Changes(c *Container) ([]Change, error) {
	resume := holdStill(c)
	defer resume()
	lowers := []string{c.InitDir()}
	img, err := r.imageOf(c)
	if err != nil {
		return nil, err
	}
	if img != nil {
		lowers = append(lowers, r.store.LayerDirs(*img)...)
	}
	// Through directory descriptors: a layer may hold a tree deeper than
	// PATH_MAX, which no path reaches (os.Root resolves one name at a time).
	var roots []*os.Root
	for _, l := range lowers {
		if root, err := os.OpenRoot(l); err == nil {
			defer root.Close()
			roots = append(roots, root)
		}
	}
	wh := ovlfmt.For(r.store.UserXattr()).Whiteout
	var out []Change
	err = dirwalk.Walk(c.UpperDir(), func(e *dirwalk.Entry) error {
		path := "/" + e.Path
		if isWhiteout(e, wh) {
			out = append(out, Change{'D', path})
			return nil
		}
		kind := byte('A')
		for _, root := range roots {
			if _, err := root.Lstat(e.Path); err == nil {
				kind = 'C'
				break
			}
		}
		out = append(out, Change{kind, path})
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return out, nil
}

// isWhiteout reports whether e is an overlay whiteout: a character device
// 0/0, or an empty file with the whiteout xattr wh.
func isWhiteout(e *dirwalk.Entry, wh string) bool {
	switch e.Stat.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		return ovlfmt.IsWhiteout(&e.Stat)
	case unix.S_IFREG:
		_, err := unix.Lgetxattr(e.ProcPath(), wh, nil)
		return err == nil
	}
	return false
}
