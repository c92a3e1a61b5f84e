package runner

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

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
	resume := pause(c)
	defer resume()
	lowers := []string{c.InitDir()}
	img, err := r.imageOf(c)
	if err != nil {
		return nil, err
	}
	if img != nil {
		lowers = append(lowers, r.store.LayerDirs(*img)...)
	}
	upper := c.UpperDir()
	userXattr := r.store.UserXattr()
	var out []Change
	err = filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == upper {
			return nil
		}
		rel, _ := filepath.Rel(upper, p)
		path := "/" + rel
		if isWhiteout(p, d, userXattr) {
			out = append(out, Change{'D', path})
			return nil
		}
		kind := byte('A')
		for _, l := range lowers {
			if _, err := os.Lstat(filepath.Join(l, rel)); err == nil {
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

// isWhiteout reports whether p is an overlay whiteout: a character device
// 0/0, or an empty file with the whiteout xattr.
func isWhiteout(p string, d fs.DirEntry, userXattr bool) bool {
	switch {
	case d.Type()&fs.ModeCharDevice != 0:
		var st unix.Stat_t
		return unix.Lstat(p, &st) == nil && ovlfmt.IsWhiteout(&st)
	case d.Type().IsRegular():
		_, err := unix.Lgetxattr(p, ovlfmt.For(userXattr).Whiteout, nil)
		return err == nil
	}
	return false
}
