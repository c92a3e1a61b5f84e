package fs

import (
	"fmt"
	"path"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// layer is one directory of the union, opened once before mounting so that
// every later access is relative to its file descriptor (*at system calls).
// That keeps working when the mountpoint covers the layer's own path.
type layer struct {
	path   string   // as given, for messages
	fd     int      // O_DIRECTORY descriptor of the layer's root
	dev    uint64   // st_dev of the root
	lower  bool     // a read-only layer, which never changes under the mount
	uuid   [16]byte // of its filesystem, for overlay.origin (origin.go)
	fsType int64    // statfs f_type of its filesystem
	// aufs caches the AUFS markers of lower directories, by path (aufs.go).
	aufs sync.Map
	// fetch is set for a lazy lower layer (lazy.go).
	fetch Fetcher
}

func openLayer(dir string) (*layer, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open layer %s: %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat layer %s: %w", dir, err)
	}
	var sfs unix.Statfs_t
	unix.Fstatfs(fd, &sfs)
	return &layer{path: dir, fd: fd, dev: st.Dev, uuid: fsUUID(fd), fsType: sfs.Type}, nil
}

func (l *layer) close() { unix.Close(l.fd) }

// at turns a path relative to the union's root into an argument for *at
// calls on the layer's descriptor.
func at(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

// join appends a name to a union-relative path.
func join(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

// dir returns the union-relative path of rel's parent.
func dir(rel string) string {
	d := path.Dir(rel)
	if d == "." {
		return ""
	}
	return d
}

// procPath names rel through /proc/self/fd, for the calls that have no *at
// form (xattrs, truncate). The final component is not followed by l*xattr.
func (l *layer) procPath(rel string) string {
	if rel == "" {
		return fmt.Sprintf("/proc/self/fd/%d/.", l.fd)
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", l.fd, rel)
}

func (l *layer) lstat(rel string, st *unix.Stat_t) error {
	return fstatat(l.fd, at(rel), st, unix.AT_SYMLINK_NOFOLLOW)
}

// lstatIn is lstat of name in directory dir of the layer: a probe for a
// name that may not exist, its path built only if it does.
func (l *layer) lstatIn(dir, name string, st *unix.Stat_t) error {
	return fstatatIn(l.fd, dir, name, st, unix.AT_SYMLINK_NOFOLLOW)
}

// exists reports whether rel is present (as anything) in the layer.
func (l *layer) exists(rel string) (bool, unix.Stat_t, error) {
	var st unix.Stat_t
	err := l.lstat(rel, &st)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return false, st, nil
	}
	return err == nil, st, err
}

func (l *layer) getxattr(rel, name string, dest []byte) (int, error) {
	if xattrAtUsable() {
		n, err := getxattrAt(l.fd, at(rel), name, dest)
		if !noXattrAt(err) {
			return n, err
		}
	}
	return unix.Lgetxattr(l.procPath(rel), name, dest)
}

// getxattrAll reads one attribute whatever its size.
func (l *layer) getxattrAll(rel, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := l.getxattr(rel, name, buf)
		if err == unix.ERANGE {
			sz, err := l.getxattr(rel, name, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, sz+1)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func (l *layer) setxattr(rel, name string, data []byte, flags int) error {
	if xattrAtUsable() {
		if err := setxattrAt(l.fd, at(rel), name, data, flags); !noXattrAt(err) {
			return err
		}
	}
	return unix.Lsetxattr(l.procPath(rel), name, data, flags)
}

func (l *layer) removexattr(rel, name string) error {
	if xattrAtUsable() {
		if err := removexattrAt(l.fd, at(rel), name); !noXattrAt(err) {
			return err
		}
	}
	return unix.Lremovexattr(l.procPath(rel), name)
}

// listxattr returns the attribute names of rel.
func (l *layer) listxattr(rel string) ([]string, error) {
	if xattrAtUsable() {
		names, err := listxattrWith(func(b []byte) (int, error) { return listxattrAt(l.fd, at(rel), b) })
		if !noXattrAt(err) {
			return names, err
		}
	}
	p := l.procPath(rel)
	return listxattrWith(func(b []byte) (int, error) { return unix.Llistxattr(p, b) })
}

// listxattrFd returns the attribute names of an open file.
func listxattrFd(fd int) ([]string, error) {
	return listxattrWith(func(b []byte) (int, error) { return unix.Flistxattr(fd, b) })
}

// listxattrPath returns the attribute names of what path leads to,
// following a final symbolic link (a /proc/self/fd link).
func listxattrPath(path string) ([]string, error) {
	return listxattrWith(func(b []byte) (int, error) { return unix.Listxattr(path, b) })
}

// listxattrWith sizes, then reads a listxattr(2) buffer with list.
func listxattrWith(list func([]byte) (int, error)) ([]string, error) {
	sz, err := list(nil)
	if err != nil || sz == 0 {
		return nil, err
	}
	buf := make([]byte, sz*2)
	sz, err = list(buf)
	if err != nil {
		return nil, err
	}
	return splitXattrNames(buf[:sz]), nil
}

// splitXattrNames splits a listxattr(2) buffer into names.
func splitXattrNames(buf []byte) []string {
	var names []string
	start := 0
	for i, c := range buf {
		if c == 0 {
			if i > start {
				names = append(names, string(buf[start:i]))
			}
			start = i + 1
		}
	}
	return names
}

// readlink returns a symlink's target.
func (l *layer) readlink(rel string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(l.fd, at(rel), buf)
		if err != nil {
			return nil, err
		}
		if n < len(buf) {
			return buf[:n], nil
		}
		buf = make([]byte, len(buf)*4)
	}
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	return syscall.EIO
}
