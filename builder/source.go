package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/sys/unix"
)

// srcRoot is where COPY and ADD take files from: the build context, or
// the root of another stage or image (COPY --from).
//
// The directory is opened once, as an os.Root, and every file below it is
// looked up, listed, hashed and read through that descriptor: a symbolic
// link cannot lead out of it, even one swapped in for a directory while
// the build reads the context (Lstat then open by path would follow it).
type srcRoot struct {
	root *os.Root
	what string // "the build context", "stage build", for errors
	// inContext: symbolic links may not leave the root, and an absolute
	// link is an error; otherwise (an image's root) absolute links are
	// resolved inside the root, as inside a container.
	inContext bool
	ignore    *patternmatcher.PatternMatcher // .dockerignore; nil for none
}

// newSrcRoot opens dir as a source root.
func newSrcRoot(dir, what string, inContext bool) (*srcRoot, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return &srcRoot{root: root, what: what, inContext: inContext}, nil
}

// Close closes the root's descriptor.
func (r *srcRoot) Close() error { return r.root.Close() }

// openContext returns the build context dir with its .dockerignore.
func openContext(dir string) (*srcRoot, error) {
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("build context %s: not a directory", dir)
	}
	r, err := newSrcRoot(abs, "the build context", true)
	if err != nil {
		return nil, err
	}
	if err := r.readIgnore(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// readIgnore reads the root's .dockerignore, if it has one.
func (r *srcRoot) readIgnore() error {
	fi, err := r.root.Lstat(".dockerignore")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf(".dockerignore: %w", err)
	}
	f, err := openRegular(r.root, ".dockerignore", fi)
	if err != nil {
		return fmt.Errorf(".dockerignore: %w", err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return fmt.Errorf(".dockerignore: %w", err)
	}
	if r.ignore, err = patternmatcher.New(patterns); err != nil {
		return fmt.Errorf(".dockerignore: %w", err)
	}
	return nil
}

// srcFile is one file to copy: where it is and where it goes.
type srcFile struct {
	name string      // relative to the root ("." for the root itself)
	rel  string      // relative to the source's top ("" for the top itself)
	info fs.FileInfo // lstat
	link string      // symlink target
	sum  []byte      // sha256 of a regular file's content (digestSources)
}

// source is one COPY source after globbing: a file or a directory tree.
type source struct {
	root  *os.Root // of the srcRoot, which the files are read through
	name  string   // as resolved, relative to the root
	isDir bool
	files []srcFile // the top first, then what is below it, in lexical order
}

// errOutside is returned (wrapped) for a source that leaves its root.
var errOutside = errors.New("outside")

// sources resolves COPY/ADD source patterns (wildcards allowed) to the
// files they name, without following symbolic links below them.
func (r *srcRoot) sources(patterns []string) ([]source, error) {
	var out []source
	for _, p := range patterns {
		clean := path.Clean("/" + filepath.ToSlash(p))[1:]
		if strings.HasPrefix(path.Clean(filepath.ToSlash(p)), "../") || path.Clean(filepath.ToSlash(p)) == ".." {
			return nil, fmt.Errorf("source %s: %w %s", p, errOutside, r.what)
		}
		var names []string
		if strings.ContainsAny(clean, "*?[") {
			m, err := r.glob(clean)
			if err != nil {
				return nil, fmt.Errorf("source %s: %w", p, err)
			}
			if len(m) == 0 {
				return nil, fmt.Errorf("source %s: no file in %s matches", p, r.what)
			}
			names = m
		} else {
			names = []string{clean}
		}
		for _, n := range names {
			s, err := r.source(p, n)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// glob matches a pattern against the paths in the root.
func (r *srcRoot) glob(pattern string) ([]string, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, err
	}
	depth := strings.Count(pattern, "/")
	var out []string
	err := fs.WalkDir(r.root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		if r.ignored(rel) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if ok, _ := path.Match(pattern, rel); ok {
			out = append(out, rel)
		}
		if d.IsDir() && strings.Count(rel, "/") >= depth {
			return fs.SkipDir
		}
		return nil
	})
	return out, err
}

// ignored reports whether .dockerignore excludes rel.
func (r *srcRoot) ignored(rel string) bool {
	if r.ignore == nil || rel == "" || rel == "." {
		return false
	}
	ok, _ := r.ignore.MatchesOrParentMatches(filepath.FromSlash(rel))
	return ok
}

// source resolves one source name and lists its files.
func (r *srcRoot) source(given, name string) (source, error) {
	resolved, err := r.resolve(name)
	if err != nil {
		return source{}, fmt.Errorf("source %s: %w", given, err)
	}
	fi, err := r.root.Lstat(orDot(resolved))
	if errors.Is(err, os.ErrNotExist) || (err == nil && r.ignored(resolved)) {
		return source{}, fmt.Errorf("source %s: no such file or directory in %s", given, r.what)
	}
	if err != nil {
		return source{}, fmt.Errorf("source %s: %w", given, err)
	}
	s := source{root: r.root, name: resolved, isDir: fi.IsDir()}
	if fi.Mode()&fs.ModeSocket != 0 {
		// Docker's build context is a tarball, which leaves sockets out.
		return source{}, fmt.Errorf("source %s: is a socket, which a build context cannot carry", given)
	}
	if !fi.IsDir() {
		s.files = []srcFile{{name: orDot(resolved), info: fi}}
		return s, nil
	}
	if err := r.walk(resolved, fi, &s); err != nil {
		return source{}, fmt.Errorf("source %s: %w", given, err)
	}
	return s, nil
}

// walk lists the directory top (relative to the root, with info) and
// everything below it into s.files, parents first and in lexical order,
// leaving out what .dockerignore excludes and sockets. Directories are
// opened through the root and their entries stat'ed relative to them.
func (r *srcRoot) walk(top string, info fs.FileInfo, s *source) error {
	var visit func(rel string, info fs.FileInfo) error
	visit = func(rel string, info fs.FileInfo) error {
		name := path.Join(top, rel)
		ignored := rel != "" && r.ignored(name)
		if ignored && info.IsDir() && !r.ignore.Exclusions() {
			return nil
		}
		if !ignored && info.Mode()&fs.ModeSocket == 0 {
			f := srcFile{name: orDot(name), rel: rel, info: info}
			if info.Mode()&fs.ModeSymlink != 0 {
				var err error
				if f.link, err = r.root.Readlink(f.name); err != nil {
					return err
				}
			}
			s.files = append(s.files, f)
		}
		if !info.IsDir() {
			return nil
		}
		d, err := r.root.OpenFile(orDot(name), os.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		entries, err := d.ReadDir(-1) // sorted; Info is fstatat in d
		d.Close()
		if err != nil {
			return err
		}
		for _, e := range entries {
			fi, err := e.Info()
			if err != nil {
				return err
			}
			if err := visit(path.Join(rel, e.Name()), fi); err != nil {
				return err
			}
		}
		return nil
	}
	return visit("", info)
}

// orDot is name, or "." for the root itself.
func orDot(name string) string {
	if name == "" {
		return "."
	}
	return name
}

// resolve follows the symbolic links in name (relative to the root) and
// returns the path it leads to, relative to the root. In the build
// context a link that leads outside it is an error; in an image's root,
// links resolve inside the root as they do in a container.
func (r *srcRoot) resolve(name string) (string, error) {
	parts := strings.Split(name, "/")
	cur := ""
	for hops := 0; len(parts) > 0; {
		part := parts[0]
		parts = parts[1:]
		if part == "" || part == "." {
			continue
		}
		next := path.Join(cur, part)
		fi, err := r.root.Lstat(next)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many levels of symbolic links", next)
		}
		target, err := r.root.Readlink(next)
		if err != nil {
			return "", err
		}
		var to string
		switch {
		case path.IsAbs(target) && r.inContext:
			return "", fmt.Errorf("symbolic link %s -> %s: %w %s", next, target, errOutside, r.what)
		case path.IsAbs(target):
			to = path.Clean(target)[1:]
		default:
			to = path.Join(cur, target)
			if to == ".." || strings.HasPrefix(to, "../") {
				if r.inContext {
					return "", fmt.Errorf("symbolic link %s -> %s: %w %s", next, target, errOutside, r.what)
				}
				to = path.Clean("/" + to)[1:]
			}
		}
		parts = append(strings.Split(to, "/"), parts...)
		cur = ""
	}
	return cur, nil
}

// digestSources hashes what a COPY or ADD would copy: names, types,
// modes, sizes, device numbers, link targets and file contents (not times
// or owners, as Docker), so that the step's cache entry is used exactly
// when the same files would be copied. Each regular file's own digest is
// kept (srcFile.sum): the copy checks that it copies what was hashed.
func digestSources(srcs []source) (string, error) {
	h := sha256.New()
	for _, s := range srcs {
		fmt.Fprintf(h, "source %q dir=%v\n", s.name, s.isDir)
		for i := range s.files {
			f := &s.files[i]
			fmt.Fprintf(h, "%q %o %d %q ", f.rel, uint32(f.info.Mode()), f.info.Size(), f.link)
			if f.info.Mode()&fs.ModeDevice != 0 {
				fmt.Fprintf(h, "rdev=%d ", rdevOf(f.info))
			}
			if f.info.Mode().IsRegular() {
				sum, err := hashFile(s.root, *f)
				if err != nil {
					return "", err
				}
				f.sum = sum
				h.Write(sum)
			}
			fmt.Fprintln(h)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashFile returns the sha256 of the regular file f of root.
func hashFile(root *os.Root, f srcFile) ([]byte, error) {
	in, err := openRegular(root, f.name, f.info)
	if err != nil {
		return nil, fmt.Errorf("read source: %w", err)
	}
	defer in.Close()
	fh := sha256.New()
	if _, err := io.Copy(fh, in); err != nil {
		return nil, fmt.Errorf("read source %s: %w", f.name, err)
	}
	return fh.Sum(nil), nil
}

// openRegular opens the file name of root for reading, which must still
// be the regular file info describes (its lstat): it is opened without
// blocking (a FIFO swapped in would block open(2)) and checked with fstat.
func openRegular(root *os.Root, name string, info fs.FileInfo) (*os.File, error) {
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	f, err := root.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !sameFile(fi, info) {
		err = fmt.Errorf("%s: changed while the build read it", name)
	}
	if err == nil {
		err = unix.SetNonblock(int(f.Fd()), false)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// sameFile reports whether a and b are the same regular file.
func sameFile(a, b fs.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return a.Mode().IsRegular() && ok1 && ok2 && sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// rdevOf is the device number of a device node.
func rdevOf(info fs.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Rdev
	}
	return 0
}
