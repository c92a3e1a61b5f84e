package builder

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/go-archive"
	"github.com/moby/go-archive/compression"
)

// copyOpts say how COPY or ADD writes into a container's root.
type copyOpts struct {
	dest     string       // absolute path in the container; a trailing / means a directory
	uid, gid int          // owner of what is copied (0:0 unless --chown)
	chmod    *fs.FileMode // --chmod, else the sources' modes
	unpack   bool         // ADD: local tar archives are extracted at dest
	progress func(files int, bytes int64)
	check    func() error // stops the copy when it returns an error
}

// copyInto copies the sources into the mounted root rootfs as Docker's
// COPY does: a directory's content goes into dest, a file goes to dest or,
// when dest is a directory, into it. Paths in the root are resolved inside
// it (its symbolic links cannot lead out), and what is below dest is
// written through an os.Root, which no link can leave either.
func copyInto(rootfs string, srcs []source, o copyOpts) error {
	destIsDir := strings.HasSuffix(o.dest, "/")
	if len(srcs) > 1 && !destIsDir {
		return fmt.Errorf("when copying more than one source, the destination must be a directory and end with a /")
	}
	c := &copier{o: o, last: time.Now()}
	for _, s := range srcs {
		if s.isDir {
			if err := c.tree(rootfs, o.dest, s); err != nil {
				return err
			}
			continue
		}
		target := o.dest
		if destIsDir || isDir(rootfs, o.dest) {
			target = path.Join(o.dest, path.Base(s.name))
		}
		f := s.files[0]
		if o.unpack && isArchive(f.abs) {
			if err := c.extract(rootfs, o.dest, f.abs); err != nil {
				return err
			}
			continue
		}
		root, err := openDir(rootfs, path.Dir(target))
		if err != nil {
			return err
		}
		f.rel = path.Base(target)
		err = c.file(root, f)
		root.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// isDir reports whether p is a directory in the root (following links
// inside it).
func isDir(rootfs, p string) bool {
	full, err := securejoin.SecureJoin(rootfs, p)
	if err != nil {
		return false
	}
	fi, err := os.Stat(full)
	return err == nil && fi.IsDir()
}

// openDir makes the directory dir in the root (resolved inside it) with
// missing parents, and opens it as an os.Root.
func openDir(rootfs, dir string) (*os.Root, error) {
	full, err := securejoin.SecureJoin(rootfs, dir)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", dir, err)
	}
	if err := os.MkdirAll(full, 0o755); err != nil {
		return nil, fmt.Errorf("destination %s: %w", dir, trimRoot(err, rootfs))
	}
	root, err := os.OpenRoot(full)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", dir, trimRoot(err, rootfs))
	}
	return root, nil
}

// trimRoot takes the mount point out of an error's path.
func trimRoot(err error, rootfs string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		pe.Path = "/" + strings.TrimPrefix(strings.TrimPrefix(pe.Path, rootfs), "/")
	}
	return err
}

// copier copies files and counts them for the progress line.
type copier struct {
	o     copyOpts
	files int
	bytes int64
	last  time.Time
}

// tree copies the content of a directory source into dir.
func (c *copier) tree(rootfs, dir string, s source) error {
	root, err := openDir(rootfs, dir)
	if err != nil {
		return err
	}
	defer root.Close()
	var dirs []srcFile
	for _, f := range s.files[1:] {
		if err := c.file(root, f); err != nil {
			return err
		}
		if f.info.IsDir() {
			dirs = append(dirs, f)
		}
	}
	// Directory times last, deepest first: writing into a directory
	// changes its modification time.
	for i := len(dirs) - 1; i >= 0; i-- {
		mt := dirs[i].info.ModTime()
		if err := root.Chtimes(dirs[i].rel, mt, mt); err != nil {
			return fmt.Errorf("copy %s: %w", dirs[i].rel, err)
		}
	}
	return nil
}

// file copies one file, directory or symbolic link to the name f.rel
// below root.
func (c *copier) file(root *os.Root, f srcFile) error {
	if c.o.check != nil {
		if err := c.o.check(); err != nil {
			return err
		}
	}
	name := f.rel
	mode := f.info.Mode()
	perm := mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if c.o.chmod != nil {
		perm = *c.o.chmod
	}
	old, err := root.Lstat(name)
	exists := err == nil
	if exists && (old.IsDir() != mode.IsDir() || !mode.IsDir() && !old.Mode().IsRegular()) {
		if old.IsDir() {
			return fmt.Errorf("copy %s: cannot replace the directory %s with a file", f.abs, name)
		}
		if err := root.Remove(name); err != nil {
			return fmt.Errorf("copy %s: %w", name, err)
		}
		exists = false
	}
	switch {
	case mode.IsDir():
		if !exists {
			if err := root.Mkdir(name, 0o700); err != nil {
				return fmt.Errorf("copy %s: %w", name, err)
			}
		}
		if err := root.Chmod(name, perm); err != nil {
			return fmt.Errorf("copy %s: %w", name, err)
		}
	case mode&fs.ModeSymlink != 0:
		if err := root.Symlink(f.link, name); err != nil {
			return fmt.Errorf("copy %s: %w", name, err)
		}
	case mode.IsRegular():
		if err := c.data(root, f, name, perm); err != nil {
			return err
		}
	default:
		return nil // sockets, fifos and devices of the context are not copied
	}
	if err := c.chown(root, name); err != nil {
		return fmt.Errorf("copy %s: chown: %w", name, err)
	}
	if mode.IsRegular() {
		mt := f.info.ModTime()
		if err := root.Chtimes(name, mt, mt); err != nil {
			return fmt.Errorf("copy %s: %w", name, err)
		}
	}
	c.files++
	if c.o.progress != nil && time.Since(c.last) > 2*time.Second {
		c.last = time.Now()
		c.o.progress(c.files, c.bytes)
	}
	return nil
}

// data copies a regular file's content.
func (c *copier) data(root *os.Root, f srcFile, name string, perm fs.FileMode) error {
	in, err := os.Open(f.abs)
	if err != nil {
		return fmt.Errorf("copy %s: %w", f.abs, err)
	}
	defer in.Close()
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("copy %s: %w", name, err)
	}
	n, err := io.Copy(out, in)
	c.bytes += n
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Chmod(name, perm)
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", name, err)
	}
	return nil
}

// chown gives name the copy's owner. Without root only 0:0, the caller's
// own mapping in the container, is possible, and left as it is.
func (c *copier) chown(root *os.Root, name string) error {
	if os.Geteuid() != 0 && c.o.uid == 0 && c.o.gid == 0 {
		return nil
	}
	return root.Lchown(name, c.o.uid, c.o.gid)
}

// isArchive reports whether p is a tar archive, plain or compressed
// (gzip, bzip2, xz, zstd), which ADD extracts.
func isArchive(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	r, err := compression.DecompressStream(f)
	if err != nil {
		return false
	}
	defer r.Close()
	_, err = tar.NewReader(r).Next()
	return err == nil
}

// extract unpacks the archive p into dir, keeping the owners it records
// (or giving the --chown owner).
func (c *copier) extract(rootfs, dir, p string) error {
	full, err := securejoin.SecureJoin(rootfs, dir)
	if err != nil {
		return fmt.Errorf("destination %s: %w", dir, err)
	}
	if err := os.MkdirAll(full, 0o755); err != nil {
		return fmt.Errorf("destination %s: %w", dir, trimRoot(err, rootfs))
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	opts := &archive.TarOptions{NoLchown: os.Geteuid() != 0}
	if c.o.uid != 0 || c.o.gid != 0 {
		opts.ChownOpts = &archive.ChownOpts{UID: c.o.uid, GID: c.o.gid}
	}
	if err := archive.Untar(f, full, opts); err != nil {
		return fmt.Errorf("extract %s: %w", filepath.Base(p), trimRoot(err, rootfs))
	}
	return nil
}

// parseChown resolves a --chown spec (user, user:group, uid, uid:gid)
// with the /etc/passwd and /etc/group of the container's root. A user
// without a group gets the group of the same number, as in Docker.
func parseChown(rootfs, spec string) (uid, gid int, err error) {
	if spec == "" {
		return 0, 0, nil
	}
	user, group, hasGroup := strings.Cut(spec, ":")
	if uid, err = lookupID(rootfs, "/etc/passwd", user); err != nil {
		return 0, 0, fmt.Errorf("--chown=%s: %w", spec, err)
	}
	if !hasGroup {
		return uid, uid, nil
	}
	if gid, err = lookupID(rootfs, "/etc/group", group); err != nil {
		return 0, 0, fmt.Errorf("--chown=%s: %w", spec, err)
	}
	return uid, gid, nil
}

// lookupID returns a numeric id, or the id of name in the file db
// (passwd or group format: name:x:id:...).
func lookupID(rootfs, db, name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	full, err := securejoin.SecureJoin(rootfs, db)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(full)
	if err != nil {
		return 0, fmt.Errorf("no %s in the image to look up %q", db, name)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 3 && fields[0] == name {
			return strconv.Atoi(fields[2])
		}
	}
	return 0, fmt.Errorf("%q is not in the image's %s", name, db)
}

// parseChmod parses --chmod (octal).
func parseChmod(spec string) (*fs.FileMode, error) {
	if spec == "" {
		return nil, nil
	}
	n, err := strconv.ParseUint(spec, 8, 32)
	if err != nil || n > 0o7777 {
		return nil, fmt.Errorf("--chmod=%s: want an octal mode such as 755", spec)
	}
	m := fs.FileMode(n & 0o777)
	if n&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return &m, nil
}
