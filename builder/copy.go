package builder

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/go-archive"
	"github.com/moby/go-archive/compression"
	"golang.org/x/sys/unix"
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
		c.src = s.root
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
		if o.unpack && f.info.Mode().IsRegular() {
			done, err := c.extractArchive(rootfs, o.dest, f)
			if err != nil {
				return err
			}
			if done {
				continue
			}
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
	src   *os.Root // of the source being copied
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
	if exists && (old.IsDir() != mode.IsDir() || !mode.IsDir() && !(old.Mode().IsRegular() && mode.IsRegular())) {
		if old.IsDir() {
			return fmt.Errorf("copy %s: cannot replace the directory %s with a file", f.name, name)
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
	case mode&(fs.ModeNamedPipe|fs.ModeDevice) != 0:
		// Made again, as a tarball of the context carries them to
		// docker's builders; never opened.
		if err := mknodIn(root, name, mode, rdevOf(f.info), perm); err != nil {
			return fmt.Errorf("copy %s: %w", name, err)
		}
	default:
		return nil // sockets: a context tarball leaves them out
	}
	if err := c.chown(root, name); err != nil {
		return fmt.Errorf("copy %s: chown: %w", name, err)
	}
	if !mode.IsDir() && mode&fs.ModeSymlink == 0 {
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

// data copies a regular file's content, read through the source's root,
// and checks that it is what digestSources hashed.
func (c *copier) data(root *os.Root, f srcFile, name string, perm fs.FileMode) error {
	in, err := openRegular(c.src, f.name, f.info)
	if err != nil {
		return fmt.Errorf("copy %s: %w", f.name, err)
	}
	defer in.Close()
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("copy %s: %w", name, err)
	}
	h := sha256.New()
	n, err := io.Copy(out, io.TeeReader(in, h))
	c.bytes += n
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = checkSum(f, h.Sum(nil))
	}
	if err == nil {
		err = root.Chmod(name, perm)
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", name, err)
	}
	return nil
}

// checkSum fails when a file's content is not what was hashed for the
// step's cache key.
func checkSum(f srcFile, sum []byte) error {
	if f.sum != nil && !bytes.Equal(f.sum, sum) {
		return fmt.Errorf("%s changed while the build read it", f.name)
	}
	return nil
}

// mknodIn makes the FIFO or device node name below root.
func mknodIn(root *os.Root, name string, mode fs.FileMode, rdev uint64, perm fs.FileMode) error {
	dir, err := root.OpenFile(orDot(path.Dir(name)), os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer dir.Close()
	typ := uint32(unix.S_IFIFO)
	switch {
	case mode&fs.ModeCharDevice != 0:
		typ = unix.S_IFCHR
	case mode&fs.ModeDevice != 0:
		typ = unix.S_IFBLK
	}
	if err := unix.Mknodat(int(dir.Fd()), path.Base(name), typ|uint32(perm&fs.ModePerm), int(rdev)); err != nil {
		return err
	}
	return root.Chmod(name, perm)
}

// chown gives name the copy's owner. Without root only 0:0, the caller's
// own mapping in the container, is possible, and left as it is.
func (c *copier) chown(root *os.Root, name string) error {
	if os.Geteuid() != 0 && c.o.uid == 0 && c.o.gid == 0 {
		return nil
	}
	return root.Lchown(name, c.o.uid, c.o.gid)
}

// extractArchive is ADD of the regular file f: when it is a tar archive,
// plain or compressed (gzip, bzip2, xz, zstd), it is unpacked into dir,
// keeping the owners it records (or giving the --chown owner), and done
// is true; otherwise nothing is done and the file is copied as it is.
func (c *copier) extractArchive(rootfs, dir string, f srcFile) (done bool, err error) {
	in, err := openRegular(c.src, f.name, f.info)
	if err != nil {
		return false, fmt.Errorf("copy %s: %w", f.name, err)
	}
	defer in.Close()
	if !isArchive(in) {
		return false, nil
	}
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	full, err := securejoin.SecureJoin(rootfs, dir)
	if err != nil {
		return false, fmt.Errorf("destination %s: %w", dir, err)
	}
	if err := os.MkdirAll(full, 0o755); err != nil {
		return false, fmt.Errorf("destination %s: %w", dir, trimRoot(err, rootfs))
	}
	opts := &archive.TarOptions{NoLchown: os.Geteuid() != 0}
	if c.o.uid != 0 || c.o.gid != 0 {
		opts.ChownOpts = &archive.ChownOpts{UID: c.o.uid, GID: c.o.gid}
	}
	h := sha256.New()
	r := io.TeeReader(in, h)
	err = archive.Untar(r, full, opts)
	if err == nil {
		_, err = io.Copy(io.Discard, r) // what the unpacker left, for the digest
	}
	if err == nil {
		err = checkSum(f, h.Sum(nil))
	}
	if err != nil {
		return false, fmt.Errorf("extract %s: %w", path.Base(f.name), trimRoot(err, rootfs))
	}
	return true, nil
}

// isArchive reports whether the file f starts a tar archive, plain or
// compressed.
func isArchive(f io.Reader) bool {
	r, err := compression.DecompressStream(f)
	if err != nil {
		return false
	}
	defer r.Close()
	_, err = tar.NewReader(r).Next()
	return err == nil
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

// maxID is the largest owner id: chown(2) takes 32 bits and -1 means
// "unchanged", so a larger id would be truncated (2^55 to 0, root).
const maxID = 1<<32 - 2

// lookupID returns a numeric id, or the id of name in the file db
// (passwd or group format: name:x:id:...).
func lookupID(rootfs, db, name string) (int, error) {
	if n, numeric, err := parseID(name); numeric {
		return n, err
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
			n, numeric, err := parseID(fields[2])
			if !numeric {
				return 0, fmt.Errorf("%s: %q has the id %q", db, name, fields[2])
			}
			return n, err
		}
	}
	return 0, fmt.Errorf("%q is not in the image's %s", name, db)
}

// parseID parses a decimal id; numeric is false for anything else (a
// name), and err is set for an id out of 0-maxID.
func parseID(s string) (id int, numeric bool, err error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false, nil
	}
	if err != nil || n < 0 || n > maxID {
		return 0, true, fmt.Errorf("id %s: ids go from 0 to %d", s, maxID)
	}
	return int(n), true, nil
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
