// Package dirwalk walks a directory tree through directory descriptors:
// each directory is opened relative to its parent's descriptor and each
// entry is stat'ed relative to its directory (openat, fstatat), so a tree
// deeper than PATH_MAX walks as any other. No system call is ever given
// the path of a file below the root, which filepath.WalkDir does, and
// which fails with ENAMETOOLONG once the path passes 4096 bytes.
package dirwalk

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"
)

// SkipDir, returned by a walk function for a directory, skips what the
// directory holds.
var SkipDir = fs.SkipDir

// Entry is one file met by Walk. Dir is valid only during the call of the
// walk function.
type Entry struct {
	// Dir is a descriptor of the directory holding the file.
	Dir int
	// Name is the file's name in Dir.
	Name string
	// Path is the file's path from the root, slash-separated ("a/b/c").
	Path string
	// Stat is the file's lstat.
	Stat unix.Stat_t
}

// IsDir reports whether the entry is a directory.
func (e *Entry) IsDir() bool { return e.Stat.Mode&unix.S_IFMT == unix.S_IFDIR }

// Open opens the entry for reading, not following a symbolic link.
func (e *Entry) Open() (*os.File, error) {
	fd, err := unix.Openat(e.Dir, e.Name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: e.Path, Err: err}
	}
	return os.NewFile(uintptr(fd), e.Path), nil
}

// Readlink returns the target of the entry, a symbolic link.
func (e *Entry) Readlink() (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(e.Dir, e.Name, buf)
		if err != nil {
			return "", &os.PathError{Op: "readlink", Path: e.Path, Err: err}
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// ProcPath returns a short path naming the entry for the system calls
// that have no *at form (lgetxattr, llistxattr): /proc/self/fd/DIR/NAME.
// Only the final name is not followed, as with any l* call.
func (e *Entry) ProcPath() string {
	return "/proc/self/fd/" + strconv.Itoa(e.Dir) + "/" + e.Name
}

// Walk calls fn for every file below root (not root itself), each
// directory before what it holds, the names of a directory in lexical
// order. A missing root is an error wrapping fs.ErrNotExist. Errors carry
// the path from the root.
func Walk(root string, fn func(e *Entry) error) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: root, Err: err}
	}
	err = walkDir(fd, "", fn)
	if errors.Is(err, SkipDir) || errors.Is(err, fs.SkipAll) {
		err = nil
	}
	return err
}

// walkDir walks the directory open as fd, at path rel, and closes fd.
func walkDir(fd int, rel string, fn func(e *Entry) error) error {
	dir := os.NewFile(uintptr(fd), rel)
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read directory %s: %w", orDot(rel), err)
	}
	sort.Strings(names)
	for _, name := range names {
		e := Entry{Dir: fd, Name: name, Path: path.Join(rel, name)}
		if err := unix.Fstatat(fd, name, &e.Stat, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed meanwhile
			}
			return &os.PathError{Op: "lstat", Path: e.Path, Err: err}
		}
		err := fn(&e)
		if err == SkipDir && e.IsDir() {
			continue
		}
		if err != nil {
			return err
		}
		if !e.IsDir() {
			continue
		}
		child, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return &os.PathError{Op: "open", Path: e.Path, Err: err}
		}
		if err := walkDir(child, e.Path, fn); err != nil {
			return err
		}
	}
	return nil
}

func orDot(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}
