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

// dirView is a directory as a lookup sees it: its layers, top first, and
// its path in each.
type dirView struct {
	layers []int
	rel    string   // the path in the merged view, which is also upper's
	paths  []string // the path in layers[i]; nil: rel in every layer
}

// path returns the directory's path in the layer at position pos.
func (v dirView) path(pos int) string {
	if v.paths == nil {
		return v.rel
	}
	return v.paths[pos]
}

// child returns the view of name, an object resolved in v as f.
func (v dirView) child(name string, f *found) dirView {
	return dirView{layers: f.layers, rel: join(v.rel, name), paths: f.paths}
}

// withoutUpper returns v without the upper layer.
func (ov *overlay) withoutUpper(v dirView) dirView {
	if len(v.layers) == 0 || ov.upper == nil || v.layers[0] != 0 {
		return v
	}
	v.layers = v.layers[1:]
	if v.paths != nil {
		v.paths = v.paths[1:]
	}
	return v
}

// view returns the directory n as lookups see it.
func (n *node) view() dirView {
	layers := n.layers()
	return dirView{layers: layers, rel: n.rel(), paths: n.pathsIn(layers)}
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
		cur = p.Operations().(*node)
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

// lookup is the state of one name's lookup down the layers (the kernel's
// ovl_lookup_data).
type lookup struct {
	// name is a name in the parent directory, or, after an absolute
	// redirect, a path from the layers' root ("/a/b").
	name   string
	isDir  bool // a directory was found
	stop   bool // the layers below are not asked
	opaque bool // a whiteout or opaque directory ended the lookup
	// redirected is set once a redirect changed name.
	redirected bool
}

// resolve looks name up in the directory d, applying whiteouts, opaque
// directories, redirects and the rule that a non-directory hides
// everything below it. ENOENT when hidden or absent.
func (ov *overlay) resolve(d dirView, name string) (found, syscall.Errno) {
	var f found
	s := lookup{name: name}
	stack := d
	var paths []string
	follows := ov.redirect.follows()
	for pos := 0; pos < len(stack.layers) && !s.stop; pos++ {
		li := stack.layers[pos]
		l := ov.layers[li]
		// As the kernel's d.last: the bottom layer has no one below to
		// send elsewhere.
		last := li == ov.bottom || !follows && pos == len(stack.layers)-1
		var st unix.Stat_t
		ok, p, errno := s.inLayer(ov, l, stack.path(pos), last, &st)
		if errno != 0 {
			return f, errno
		}
		if !ok {
			continue
		}
		if len(f.layers) == 0 {
			f.st = st
		}
		f.layers = append(f.layers, li)
		paths = append(paths, p)
		if s.redirected && !follows && (ov.upper == nil || li != 0) {
			ov.logf("refusing to follow the redirect of %s (redirect_dir=nofollow)", join(d.rel, name))
			return f, syscall.EPERM
		}
		if s.stop {
			break
		}
		if s.name[0] == '/' {
			// An absolute redirect: go on down the root's layers.
			stack = ov.rootView
			pos = li
		}
	}
	if len(f.layers) == 0 {
		return f, syscall.ENOENT
	}
	if s.redirected || d.paths != nil {
		f.paths = paths
		f.redirected = s.redirected
	}
	return f, 0
}

// inLayer looks the lookup's name up in layer l, whose directory to look
// in is dirPath; it returns whether something counts and its path.
func (s *lookup) inLayer(ov *overlay, l *layer, dirPath string, last bool, st *unix.Stat_t) (bool, string, syscall.Errno) {
	if s.name[0] != '/' {
		name := s.name
		ok, errno := s.single(ov, l, dirPath, name, 0, "", last, st)
		return ok, join(dirPath, name), errno
	}
	// An absolute path, one component at a time; a redirect on the way
	// rewrites the path for the layers below, so count from the end.
	cur := ""
	rem := len(s.name) - 1
	for {
		start := len(s.name) - rem
		comp, _, _ := strings.Cut(s.name[start:], "/")
		post := s.name[start+len(comp):]
		ok, errno := s.single(ov, l, cur, comp, start, post, last, st)
		if errno != 0 || !ok {
			return false, "", errno
		}
		cur = join(cur, comp)
		if post == "" {
			return true, cur, 0
		}
		if !isDirStat(st) {
			return false, "", 0
		}
		rem -= len(comp) + 1
	}
}

// single looks one component up (the kernel's ovl_lookup_single): comp in
// directory dirPath of l; prelen and post are what precedes and follows
// it in the lookup's name.
func (s *lookup) single(ov *overlay, l *layer, dirPath, comp string, prelen int, post string, last bool, st *unix.Stat_t) (bool, syscall.Errno) {
	lastElem := post == ""
	marker, whiteout := l.hidesAufs(dirPath, comp)
	if marker {
		return false, 0 // AUFS markers are not names of the merged view
	}
	if whiteout {
		s.stop, s.opaque = true, true
		return false, 0
	}
	p := join(dirPath, comp)
	if err := l.lstat(p, st); err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ENAMETOOLONG {
			return false, 0
		}
		return false, errnoOf(err)
	}
	if ov.isWhiteout(l, p, st) {
		s.stop, s.opaque = true, true
		return false, 0
	}
	if !isDirStat(st) {
		s.stop = true
		return !s.isDir, 0
	}
	if lastElem {
		s.isDir = true
	}
	if last {
		return true, 0
	}
	if ov.isOpaque(l, p) {
		s.stop = true
		if lastElem {
			s.opaque = true
		}
		return true, 0
	}
	r, ok, errno := ov.redirectOf(l, p)
	if errno != 0 {
		return false, errno
	}
	if ok {
		if r[0] == '/' {
			// Found below an opaque directory on the way, an absolute
			// redirect still sends the lookup on (as the kernel).
			s.name = r + post
			s.stop = false
		} else {
			s.name = s.name[:prelen] + r + post
		}
		s.redirected = true
	}
	return true, 0
}

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
		cur = p.Operations().(*node)
	}
	slices.Reverse(parts)
	r := strings.Join(parts, "/")
	if r == "" || r[0] != '/' {
		r = "/" + r
	}
	return r, 0
}
