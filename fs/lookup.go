package fs

import (
	"context"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// A name is looked up as the kernel's ovl_lookup does it: down the
// directory's layers, top first (resolve), asking each layer in turn
// (lookup.single, the kernel's ovl_lookup_single). A whiteout ends the
// lookup with nothing; a non-directory is the answer and hides everything
// below it; a directory merges with the directories of the same name
// below, until one is opaque or the bottom layer is reached. A directory's
// redirect (redirect.go) changes the name asked of the layers below it; an
// absolute one ("/a/b") sends the lookup on from the root, in the layers
// below the one where it was met, one component at a time (inLayer).
//
// A directory is given to a lookup as a dirView: its layers and its path
// in each. The result (found) lists the layers that hold the name, and its
// paths in them when a redirect made them differ from the merged path.

// Lookup resolves name through the directory's layers.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*node, syscall.Errno) {
	n.ov.rdplus.noteLookup()
	n.ov.mu.RLock()
	defer n.ov.mu.RUnlock()
	f, errno := n.ov.resolve(n.view(), name)
	if errno != 0 {
		return nil, errno
	}
	return n.newChild(name, &f, out), 0
}

// found is the result of resolving one name in a directory.
type found struct {
	layers []int
	st     unix.Stat_t // attributes of the topmost object
	// paths holds the object's path in each of layers, when it is not
	// its merged path in every one (see redirect.go); nil otherwise.
	paths []string
	// redirected is set when a redirect sent the lookup elsewhere: the
	// paths must then be recorded, as they cannot be derived.
	redirected bool
	// dataErr is set for a metacopy file whose data is missing from the
	// data-only layers (datalayer.go).
	dataErr syscall.Errno
	// fresh is set for an upper object this server has just made (not
	// a new link to an old one): it has no origin to read (origin.go).
	fresh bool
}

// pathIn returns the path of f, found as name in parent, in its i-th
// layer (f.layers[i]).
func (f *found) pathIn(parent *node, name string, i int) string {
	if f.paths != nil {
		return f.paths[i]
	}
	return join(parent.pathIn(f.layers[i]), name)
}

// lowerHasName reports whether name exists (not as a whiteout) in any layer
// of the directory below the upper one: removing it from the merged view
// then needs a whiteout.
func (ov *overlay) lowerHasName(d dirView, name string) (bool, syscall.Errno) {
	f, errno := ov.resolve(ov.withoutUpper(d), name)
	if errno == syscall.ENOENT {
		return false, 0
	}
	return errno == 0 && len(f.layers) > 0, errno
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
	// metacopy is set when the last regular file found is a metacopy
	// file, whose data is further down (metacopy.go).
	metacopy bool
	// absRedirect is set when the last redirect read was absolute.
	absRedirect bool
}

// resolve looks name up in the directory d, applying whiteouts, opaque
// directories, redirects and the rule that a non-directory hides
// everything below it. ENOENT when hidden or absent.
func (ov *overlay) resolve(d dirView, name string) (found, syscall.Errno) {
	var f found
	s := lookup{name: name}
	// The layers asked, and the position of the next one to ask.
	stack, pos := d, 0
	var paths []string
	follows := ov.redirect.follows()
	checkRedirect := follows || len(ov.dataLayers) > 0
	for pos < len(stack.layers) && !s.stop {
		li, dirPath := stack.layers[pos], stack.path(pos)
		if s.metacopy { // its path is built only below a metacopy file
			if errno := ov.followMetacopy(&s, join(d.rel, name)); errno != 0 {
				return f, errno
			}
		}
		// As the kernel's d.last: the bottom layer has no one below to
		// send elsewhere — but for a metacopy file, the data-only layers.
		var last bool
		switch {
		case !checkRedirect:
			last = pos == len(stack.layers)-1
		case s.isDir || len(ov.dataLayers) == 0:
			last = li == ov.bottom
		}
		pos++
		var st unix.Stat_t
		ok, p, errno := s.inLayer(ov, ov.layers[li], dirPath, last, &st)
		if errno != 0 {
			return f, errno
		}
		if !ok {
			continue
		}
		if len(f.layers) == 0 {
			f.st = st
		} else if !isDirStat(&st) {
			// A non-directory below another is the data of a metacopy
			// file: only the top copy and the data are kept.
			f.layers, paths = f.layers[:1], paths[:1]
			f.st.Blocks = st.Blocks
		}
		if len(f.layers) == 0 && li < len(ov.oneLayer) {
			// Most objects live in one layer: no slice of their own (its
			// capacity of 1 makes an append copy it). Its allocation was
			// garbage that shared the allocator's 16-byte blocks with the
			// names READDIRPLUS nodes keep, so each kept name held a block.
			f.layers = ov.oneLayer[li].layers[:1:1]
		} else {
			f.layers = append(f.layers, li)
		}
		paths = append(paths, p)
		if s.redirected && !follows && (ov.upper == nil || li != 0) && isDirStat(&st) {
			ov.logf("refusing to follow the redirect of %s (redirect_dir=nofollow)", join(d.rel, name))
			return f, syscall.EPERM
		}
		if s.stop {
			break
		}
		if s.name[0] == '/' {
			// An absolute redirect: go on down the root's layers, from
			// the one below li (the root holds every layer, in order).
			stack, pos = ov.rootView, li+1
		}
	}
	if len(f.layers) == 0 {
		return f, syscall.ENOENT
	}
	if s.metacopy {
		if errno := ov.metacopyData(&s, join(d.rel, name), &f, &paths); errno != 0 {
			return f, errno
		}
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
		return s.single(ov, l, dirPath, s.name, 0, "", last, st)
	}
	// An absolute path, one component at a time; a redirect on the way
	// rewrites the path for the layers below, so count from the end.
	cur := ""
	rem := len(s.name) - 1
	for {
		start := len(s.name) - rem
		comp, _, _ := strings.Cut(s.name[start:], "/")
		post := s.name[start+len(comp):]
		ok, p, errno := s.single(ov, l, cur, comp, start, post, last, st)
		if errno != 0 || !ok {
			return false, "", errno
		}
		cur = p
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
// it in the lookup's name. It returns whether something counts, and then
// its path in l.
func (s *lookup) single(ov *overlay, l *layer, dirPath, comp string, prelen int, post string, last bool, st *unix.Stat_t) (bool, string, syscall.Errno) {
	lastElem := post == ""
	marker, whiteout := l.hidesAufs(dirPath, comp)
	if marker {
		return false, "", 0 // AUFS markers are not names of the merged view
	}
	if whiteout {
		s.stop, s.opaque = true, true
		return false, "", 0
	}
	if err := l.lstatIn(dirPath, comp, st); err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ENAMETOOLONG {
			return false, "", 0
		}
		return false, "", errnoOf(err)
	}
	p := join(dirPath, comp)
	if ov.isWhiteout(l, p, st) {
		s.stop, s.opaque = true, true
		return false, "", 0
	}
	if lastElem && s.metacopy && st.Mode&unix.S_IFMT != unix.S_IFREG {
		// The data of a metacopy file can only be a regular file.
		s.stop = true
		return false, "", 0
	}
	if !isDirStat(st) {
		s.stop = true
		if s.isDir || !lastElem {
			return !s.isDir, p, 0
		}
		mc, errno := ov.isMetacopyFile(l, p, st)
		if errno != 0 {
			return false, "", errno
		}
		s.metacopy = mc
		if !mc || last {
			return true, p, 0
		}
		s.stop = false // its data is further down
	} else {
		if lastElem {
			s.isDir = true
		}
		if last {
			return true, p, 0
		}
		if ov.isOpaque(l, p) {
			s.stop = true
			if lastElem {
				s.opaque = true
			}
			return true, p, 0
		}
	}
	r, ok, errno := ov.redirectOf(l, p)
	if errno != 0 {
		return false, "", errno
	}
	s.absRedirect = ok && r[0] == '/'
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
	return true, p, 0
}
