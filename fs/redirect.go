package fs

import (
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Directory redirects (redirect_dir), as the kernel's overlayfs makes and
// follows them.
//
// The lower layers are read-only, so a directory that has lower content
// is renamed by moving its upper copy, which then records where its lower
// content lives: the overlay.redirect attribute holds either a name in the
// same parent ("old", for a rename within one directory) or a path from
// the layers' root ("/a/old"). Lookups below the directory read the lower
// layers there. Lower layers may carry redirects of their own (an upper
// rotated into a lower), which lookups follow layer by layer, each
// component of an absolute redirect in turn, as the kernel's
// ovl_lookup_layer does.
//
// So a node's path in a lower layer is not always its path in the merged
// view. entry.paths records it for the nodes where a redirect was
// involved; nodes below them derive theirs (pathsIn). Until the first
// redirect is met, every path is the merged one, with no extra work.

const (
	// redirectMax is the longest redirect written (the kernel's
	// redirect_max default); a longer one makes the rename fail with EXDEV,
	// so that mv(1) copies instead.
	redirectMax = 256
)

// redirectMode returns the redirect_dir mode to use. user.overlay.*
// attributes can be set by the owner of any directory in a layer: a
// server running as root must not follow them (a redirect is a path
// lookup without permission checks), so, as the kernel with userxattr,
// it neither follows nor makes redirects then. A server running as the
// mounting user (rootless) follows them: it can read only what that user
// can read anyway.
func (ov *overlay) redirectMode() RedirectMode {
	if ov.cfg.UserXattr && ov.privileged && ov.initUserNS && ov.cfg.Redirect != RedirectNoFollow {
		ov.logf("userxattr as root: directory redirects are neither followed nor made (redirect_dir=nofollow), as the kernel")
		return RedirectNoFollow
	}
	return ov.cfg.Redirect
}

// topPath returns the topmost layer holding n and n's path in it.
func (n *node) topPath() (*layer, string, syscall.Errno) {
	ls := n.layers()
	if len(ls) == 0 {
		return nil, "", syscall.ENOENT
	}
	return n.ov.layers[ls[0]], n.pathIn(ls[0]), 0
}

// pathIn returns n's path in layer li.
func (n *node) pathIn(li int) string {
	if li == n.ov.indexLayer {
		name, _ := n.indexedName()
		return name
	}
	if !n.ov.redirected.Load() || li == 0 && n.ov.upper != nil {
		return n.rel()
	}
	return n.pathsIn([]int{li})[0]
}

// pathsIn returns n's path in each of layers, or nil when they all are its
// merged path (no redirect met so far). Upper's is always the merged path.
func (n *node) pathsIn(layers []int) []string {
	ov := n.ov
	if !ov.redirected.Load() {
		return nil
	}
	rel := n.rel()
	// Walk up to the nearest node whose paths are recorded.
	var names []string
	var base *entry
	for cur := n; !cur.IsRoot(); {
		if e := cur.state.Load(); e != nil && e.paths != nil {
			base = e
			break
		}
		name, p := cur.Parent()
		if p == nil {
			base = nil
			names = nil
			break // unlinked: every path fails, as rel does
		}
		names = append(names, name)
		cur = p
	}
	slices.Reverse(names)
	suffix := strings.Join(names, "/")
	out := make([]string, len(layers))
	for i, li := range layers {
		switch {
		case li == 0 && ov.upper != nil:
			out[i] = rel
		case base == nil:
			out[i] = rel
		default:
			p, ok := base.pathIn(li)
			switch {
			case !ok:
				p = rel
			case suffix != "":
				p = join(p, suffix)
			}
			out[i] = p
		}
	}
	return out
}

// pathIn returns the recorded path of the entry in layer li.
func (e *entry) pathIn(li int) (string, bool) {
	for i, l := range e.layers {
		if l == li {
			return e.paths[i], true
		}
	}
	return "", false
}

// movedDir is a directory with lower content about to be renamed, with
// its paths in its layers, which the rename does not change.
type movedDir struct {
	n      *node
	layers []int
	paths  []string
}

// beforeMove notes where directory n's content lives before it moves.
func (n *node) beforeMove() movedDir {
	layers := n.layers()
	paths := n.pathsIn(layers)
	if paths == nil {
		rel := n.rel()
		paths = make([]string, len(layers))
		for i := range paths {
			paths[i] = rel
		}
	}
	return movedDir{n, layers, paths}
}

// record keeps the paths for the directory, now at its new place.
func (m movedDir) record() { m.n.setState(m.layers, m.paths) }

// redirectOf returns the redirect recorded on directory p of layer l, if
// it has one. A malformed one fails the lookup, as in the kernel: EINVAL,
// or EACCES for "." and ".." components, which could leave the layer.
func (ov *overlay) redirectOf(l *layer, p string) (string, bool, syscall.Errno) {
	b, err := l.getxattrAll(p, ov.xattr.Redirect)
	if err != nil {
		return "", false, 0
	}
	r := string(b)
	if errno := checkRedirect(r); errno != 0 {
		ov.logf("%s: invalid redirect %q", join(l.path, p), r)
		return "", false, errno
	}
	return r, true, 0
}

// upperRedirect returns the valid redirect of upper directory rel, if any.
func (ov *overlay) upperRedirect(rel string) (string, bool) {
	r, ok, _ := ov.redirectOf(ov.upper, rel)
	return r, ok
}

// checkRedirect checks that r is a well-formed redirect: a name, or an
// absolute path of names.
func checkRedirect(r string) syscall.Errno {
	if r == "" || strings.IndexByte(r, 0) >= 0 {
		return syscall.EINVAL
	}
	comps := []string{r}
	if r[0] == '/' {
		comps = strings.Split(r[1:], "/")
	} else if strings.Contains(r, "/") {
		return syscall.EINVAL
	}
	for _, c := range comps {
		switch c {
		case "":
			return syscall.EINVAL
		case ".", "..":
			return syscall.EACCES
		}
	}
	return 0
}

// setRedirect records, on the upper copy of directory d that is about to
// be renamed, where its lower content lives (the kernel's
// ovl_set_redirect): its name, for a rename within its directory, else its
// path from the root, built from the names and redirects of its
// ancestors. A redirect that still holds is kept.
func (ov *overlay) setRedirect(d *node, samedir bool) syscall.Errno {
	rel := d.rel()
	cur, has := ov.upperRedirect(rel)
	if has && (samedir || cur[0] == '/') {
		return 0
	}
	var r string
	if samedir {
		name, p := d.Parent()
		if p == nil {
			return syscall.ENOENT
		}
		r = name
	} else {
		var errno syscall.Errno
		if r, errno = ov.absoluteRedirect(d); errno != 0 {
			return errno
		}
	}
	if len(r) > redirectMax {
		return syscall.EXDEV
	}
	err := ov.upper.setxattr(rel, ov.xattr.Redirect, []byte(r), 0)
	if err == unix.ENOTSUP {
		return syscall.EXDEV
	}
	return errnoOf(err)
}

// absoluteRedirect returns the path from the root at which the lower
// content of d lives: its ancestors' names, or their redirects, up to the
// root or the first absolute redirect (the kernel's ovl_get_redirect).
func (ov *overlay) absoluteRedirect(d *node) (string, syscall.Errno) {
	var parts []string
	for cur := d; !cur.IsRoot(); {
		name, p := cur.Parent()
		if p == nil {
			return "", syscall.ENOENT
		}
		if r, ok := ov.upperRedirect(cur.rel()); ok {
			name = r
		}
		parts = append(parts, name)
		if name[0] == '/' {
			break
		}
		cur = p
	}
	slices.Reverse(parts)
	r := strings.Join(parts, "/")
	if r == "" || r[0] != '/' {
		r = "/" + r
	}
	return r, 0
}
