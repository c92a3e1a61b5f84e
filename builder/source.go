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

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// srcRoot is where COPY and ADD take files from: the build context, or
// the root of another stage or image (COPY --from).
type srcRoot struct {
	dir  string // absolute, without symbolic links
	what string // "the build context", "stage build", for errors
	// inContext: symbolic links may not leave dir, and an absolute link
	// is an error; otherwise (an image's root) absolute links are
	// resolved inside dir, as inside a container.
	inContext bool
	ignore    *patternmatcher.PatternMatcher // .dockerignore; nil for none
}

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
	r := &srcRoot{dir: abs, what: "the build context", inContext: true}
	f, err := os.Open(filepath.Join(abs, ".dockerignore"))
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	if r.ignore, err = patternmatcher.New(patterns); err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	return r, nil
}

// srcFile is one file to copy: where it is and where it goes.
type srcFile struct {
	abs  string      // on the host
	rel  string      // relative to the source's top ("" for the top itself)
	info fs.FileInfo // lstat
	link string      // symlink target
}

// source is one COPY source after globbing: a file or a directory tree.
type source struct {
	name  string // as resolved, relative to the root
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
	err := filepath.WalkDir(r.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, r.dir+string(filepath.Separator)))
		if p == r.dir {
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
	abs := filepath.Join(r.dir, filepath.FromSlash(resolved))
	fi, err := os.Lstat(abs)
	if errors.Is(err, os.ErrNotExist) || (err == nil && r.ignored(resolved)) {
		return source{}, fmt.Errorf("source %s: no such file or directory in %s", given, r.what)
	}
	if err != nil {
		return source{}, fmt.Errorf("source %s: %w", given, err)
	}
	s := source{name: resolved, isDir: fi.IsDir()}
	if !fi.IsDir() {
		s.files = []srcFile{{abs: abs, info: fi}}
		return s, nil
	}
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(strings.TrimPrefix(p, abs), string(filepath.Separator)))
		if r.ignored(path.Join(resolved, rel)) && rel != "" {
			if d.IsDir() && !r.ignore.Exclusions() {
				return fs.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		f := srcFile{abs: p, rel: rel, info: info}
		if info.Mode()&fs.ModeSymlink != 0 {
			if f.link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		s.files = append(s.files, f)
		return nil
	})
	if err != nil {
		return source{}, fmt.Errorf("source %s: %w", given, err)
	}
	return s, nil
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
		fi, err := os.Lstat(filepath.Join(r.dir, filepath.FromSlash(next)))
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many levels of symbolic links", next)
		}
		target, err := os.Readlink(filepath.Join(r.dir, filepath.FromSlash(next)))
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
// modes, sizes, link targets and file contents (not times or owners, as
// Docker), so that the step's cache entry is used exactly when the same
// files would be copied.
func digestSources(srcs []source) (string, error) {
	h := sha256.New()
	for _, s := range srcs {
		fmt.Fprintf(h, "source %q dir=%v\n", s.name, s.isDir)
		for _, f := range s.files {
			fmt.Fprintf(h, "%q %o %d %q ", f.rel, uint32(f.info.Mode()), f.info.Size(), f.link)
			if f.info.Mode().IsRegular() {
				if err := hashFile(h, f.abs); err != nil {
					return "", err
				}
			}
			fmt.Fprintln(h)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(w io.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("read source: %w", err)
	}
	defer f.Close()
	fh := sha256.New()
	if _, err := io.Copy(fh, f); err != nil {
		return fmt.Errorf("read source %s: %w", p, err)
	}
	_, err = w.Write(fh.Sum(nil))
	return err
}
