package cowcache

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// extractor writes the entries filterEntries has checked into a layer
// directory. Each entry is made at a descriptor of its parent directory,
// kept open while the entries of that directory follow, and given its
// owner, xattrs, mode and times through its own descriptor where it has
// one: a handful of system calls per file. (go-archive's Unpack, used
// before, resolves every path component again through os.Root for each
// of its steps, about fifteen openat(2) per file, which was half of a
// pull's CPU.)
//
// Its rules are go-archive's: implied parent directories are made 0755;
// the owner is set before the mode (chown clears setuid); an xattr the
// filesystem refuses with EPERM is dropped (user namespaces refuse
// trusted.* and user.* on symbolic links); times earlier than the epoch
// become the epoch; a directory gets its times after everything in it is
// made. A directory also gets its mode then, so that a read-only one
// (0555, as /proc of an image) can still be filled by a process that
// owns it without CAP_DAC_OVERRIDE. filterEntries refuses duplicates, so
// every name but an implied directory is new: it is made with O_EXCL and
// never replaces anything.
type extractor struct {
	root  int
	chown bool
	// uid and gid own what the extractor makes before it chowns it; when
	// setgid, the root passes its group on instead (keepOwner says no).
	uid, gid int
	setgid   bool
	// fileModes says a regular file may be made with its mode at once
	// (keepMode): the umask is known and no default ACL decides new
	// files' modes instead.
	fileModes bool
	umask     uint32
	// holes gives regular files (by cleaned name) the size they get as a
	// hole, for partial layers (ApplyPartial).
	holes map[string]int64
	dirs  map[string]int // open directories by cleaned name; "." is root
	later []dirTimes
	buf   []byte
	// size adds up the regular files and symbolic links made, as
	// DirSize counts them (a hard link adds nothing).
	size int64
}

// dirTimes is what a directory gets once all entries are made.
type dirTimes struct {
	name         string
	mode         uint32
	atime, mtime unix.Timespec
}

// maxOpenDirs bounds the directory descriptors an extractor keeps.
const maxOpenDirs = 64

func newExtractor(dir string, opts unpackOptions) (*extractor, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("unpack: open %s: %w", dir, err)
	}
	x := &extractor{root: fd, chown: !opts.noChown, holes: opts.holes, dirs: map[string]int{},
		uid: os.Geteuid(), gid: os.Getegid()}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("unpack: stat %s: %w", dir, err)
	}
	x.setgid = st.Mode&unix.S_ISGID != 0
	umask, ok := processUmask()
	x.umask = umask
	x.fileModes = ok && !hasDefaultACL(fd)
	return x, nil
}

// keepOwner reports whether a node the extractor just made already has
// hdr's owner, so that chown can be skipped: a system call on each of
// tens of thousands of files. (Not for a hard link: its target was made
// with an owner of its own.)
func (x *extractor) keepOwner(hdr *tar.Header) bool {
	return hdr.Uid == x.uid && hdr.Gid == x.gid && !x.setgid && hdr.Typeflag != tar.TypeLink
}

// keepMode reports whether a regular file made with hdr's permission
// bits ends up with hdr's mode without a chmod: no setuid, setgid or
// sticky bit (chown would clear the first two), no bit the umask takes
// away, and no xattr (an access ACL sets the mode too).
func (x *extractor) keepMode(hdr *tar.Header) bool {
	return x.fileModes && hdr.Mode&0o7000 == 0 && uint32(hdr.Mode)&x.umask == 0 && !hasXattrs(hdr)
}

// close releases the descriptors.
func (x *extractor) close() {
	x.forget()
	unix.Close(x.root)
}

// forget closes the cached directory descriptors.
func (x *extractor) forget() {
	for name, fd := range x.dirs {
		unix.Close(fd)
		delete(x.dirs, name)
	}
}

// dir returns a descriptor of the directory name ("." for the root),
// making it and its parents (0755) when the archive did not. It opens
// one component at a time, at its parent's descriptor and without
// following a symbolic link: a layer's tree may be deeper than PATH_MAX.
func (x *extractor) dir(name string) (int, error) {
	if name == "." {
		return x.root, nil
	}
	if fd, ok := x.dirs[name]; ok {
		return fd, nil
	}
	parent, err := x.dir(path.Dir(name))
	if err != nil {
		return -1, err
	}
	base := path.Base(name)
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(parent, base, flags, 0)
	if errors.Is(err, unix.ENOENT) {
		if err := unix.Mkdirat(parent, base, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, &os.PathError{Op: "mkdir", Path: name, Err: err}
		}
		fd, err = unix.Openat(parent, base, flags, 0)
	}
	if errors.Is(err, unix.ENOTDIR) {
		// O_DIRECTORY answers ENOTDIR for a symbolic link too.
		var st unix.Stat_t
		if unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			err = unix.ELOOP
		}
	}
	if err != nil {
		return -1, wrapOpen(name, err)
	}
	x.keep(name, fd)
	return fd, nil
}

// keep caches fd as the directory name's descriptor. (The cache is
// emptied when full at the start of an entry, never while one holds
// descriptors from it.)
func (x *extractor) keep(name string, fd int) { x.dirs[name] = fd }

// entry makes the checked entry hdr (its name cleaned by checkEntry),
// with data as a regular file's content.
func (x *extractor) entry(hdr *tar.Header, data io.Reader) error {
	if len(x.dirs) >= maxOpenDirs {
		x.forget()
	}
	name := strings.TrimSuffix(hdr.Name, "/")
	parent, err := x.dir(path.Dir(name))
	if err != nil {
		return err
	}
	base := path.Base(name)
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.directory(parent, name, base, hdr)
	case tar.TypeReg:
		return x.file(parent, name, base, hdr, data)
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, parent, base); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
		x.size += int64(len(hdr.Linkname))
		return x.metaAt(parent, base, hdr, true)
	case tar.TypeLink:
		tparent, err := x.dir(path.Dir(hdr.Linkname))
		if err != nil {
			return err
		}
		if err := unix.Linkat(tparent, path.Base(hdr.Linkname), parent, base, 0); err != nil {
			return fmt.Errorf("link to %s: %w", hdr.Linkname, err)
		}
		var st unix.Stat_t
		if err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		return x.metaAt(parent, base, hdr, st.Mode&unix.S_IFMT == unix.S_IFLNK)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		if hdr.Devmajor < 0 || hdr.Devmajor > 1<<32-1 || hdr.Devminor < 0 || hdr.Devminor > 1<<32-1 {
			return fmt.Errorf("device number %d:%d out of range", hdr.Devmajor, hdr.Devminor)
		}
		if err := unix.Mknodat(parent, base, mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
		return x.metaAt(parent, base, hdr, false)
	}
	return fmt.Errorf("%w %q", ErrEntryType, hdr.Typeflag)
}

// directory makes (or, when implied earlier, keeps) the directory name
// in parent and gives it its owner and xattrs now, its mode and times in
// finish.
func (x *extractor) directory(parent int, name, base string, hdr *tar.Header) error {
	if err := unix.Mkdirat(parent, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("mkdir: %w", err)
	}
	fd, err := unix.Openat(parent, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	x.keep(name, fd)
	if x.chown && !x.keepOwner(hdr) {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return chownError(hdr, err)
		}
	}
	if err := setXattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) }); err != nil {
		return err
	}
	if _, ok := hdr.PAXRecords["SCHILY.xattr."+aclDefaultXattr]; ok {
		x.fileModes = false // files below get their modes from it
	}
	atime, mtime := entryTimes(hdr)
	x.later = append(x.later, dirTimes{name: name, mode: uint32(hdr.Mode & 0o7777), atime: atime, mtime: mtime})
	return nil
}

// file makes the regular file name in parent from data, or as a hole of
// the size x.holes gives it.
func (x *extractor) file(parent int, name, base string, hdr *tar.Header, data io.Reader) error {
	mode, keepMode := uint32(0o600), x.keepMode(hdr)
	if keepMode {
		mode = uint32(hdr.Mode & 0o777)
	}
	fd, err := unix.Openat(parent, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer unix.Close(fd)
	if hdr.Size > 0 {
		if x.buf == nil {
			x.buf = make([]byte, 256<<10)
		}
		if _, err := io.CopyBuffer(fdWriter(fd), io.LimitReader(data, hdr.Size), x.buf); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		x.size += hdr.Size
	} else if size := x.holes[name]; size > 0 {
		if err := unix.Ftruncate(fd, size); err != nil {
			return fmt.Errorf("truncate: %w", err)
		}
		x.size += size
	}
	if x.chown && !x.keepOwner(hdr) {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return chownError(hdr, err)
		}
	}
	if err := setXattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) }); err != nil {
		return err
	}
	if !keepMode {
		if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	atime, mtime := entryTimes(hdr)
	if err := futimens(fd, atime, mtime); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// metaAt gives base in parent (a node without a descriptor of its own:
// symbolic link, hard link, device, fifo) its owner, xattrs, mode and
// times; a symbolic link has no mode, and one reached by a hard link
// keeps its times, as in go-archive.
func (x *extractor) metaAt(parent int, base string, hdr *tar.Header, symlink bool) error {
	if x.chown && !x.keepOwner(hdr) {
		if err := unix.Fchownat(parent, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return chownError(hdr, err)
		}
	}
	proc := "/proc/self/fd/" + strconv.Itoa(parent) + "/" + base
	if err := setXattrs(hdr, func(k string, v []byte) error { return unix.Lsetxattr(proc, k, v, 0) }); err != nil {
		return err
	}
	if symlink && hdr.Typeflag == tar.TypeLink {
		return nil
	}
	if !symlink {
		if err := unix.Fchmodat(parent, base, uint32(hdr.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	atime, mtime := entryTimes(hdr)
	if err := unix.UtimesNanoAt(parent, base, []unix.Timespec{atime, mtime}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// finish gives the directories their modes and times, now that nothing
// more is made in them, and closes the descriptors.
func (x *extractor) finish() error {
	x.forget()
	for _, d := range x.later {
		if len(x.dirs) >= maxOpenDirs {
			x.forget()
		}
		fd, err := x.dir(d.name)
		if err == nil {
			err = unix.Fchmod(fd, d.mode)
		}
		if err == nil {
			err = futimens(fd, d.atime, d.mtime)
		}
		if err != nil {
			return &EntryError{Entry: d.name, Err: err}
		}
	}
	x.later = nil
	x.forget()
	return nil
}

// setXattrs sets the entry's xattrs (PAX SCHILY.xattr.* records) with
// set; an attribute refused with EPERM is dropped, as go-archive does.
func setXattrs(hdr *tar.Header, set func(k string, v []byte) error) error {
	for key, value := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(key, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if err := set(name, []byte(value)); err != nil && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	return nil
}

// hasXattrs reports whether hdr sets an xattr.
func hasXattrs(hdr *tar.Header) bool {
	for key := range hdr.PAXRecords {
		if strings.HasPrefix(key, "SCHILY.xattr.") {
			return true
		}
	}
	return false
}

// aclDefaultXattr holds a directory's default ACL, which gives the files
// made in it their modes in place of the umask.
const aclDefaultXattr = "system.posix_acl_default"

// hasDefaultACL reports whether the directory fd has a default ACL.
func hasDefaultACL(fd int) bool {
	_, err := unix.Fgetxattr(fd, aclDefaultXattr, nil)
	return err == nil
}

// processUmask returns the process's umask, as /proc/self/status shows
// it (umask(2) can only read it by changing it, which would race with
// other goroutines making files), and whether it could be read. It is
// read for each layer: a process may change it.
func processUmask() (uint32, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return uint32(m), err == nil
		}
	}
	return 0, false
}

// chownError explains a failed chown; EINVAL in a user namespace means
// an id it does not map.
func chownError(hdr *tar.Header, err error) error {
	if errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("chown to %d:%d: %w (an id this user namespace does not map: see /etc/subuid and /etc/subgid)", hdr.Uid, hdr.Gid, err)
	}
	return fmt.Errorf("chown to %d:%d: %w", hdr.Uid, hdr.Gid, err)
}

// entryTimes returns the access and modification times an entry gets:
// the access time is never before the modification time, and a time
// before the epoch (or past what a timespec holds) is the epoch.
func entryTimes(hdr *tar.Header) (atime, mtime unix.Timespec) {
	bound := func(t time.Time) unix.Timespec {
		if t.Before(time.Unix(0, 0)) || t.After(time.Unix(0, 1<<63-1)) {
			return unix.Timespec{}
		}
		return unix.NsecToTimespec(t.UnixNano())
	}
	a := hdr.AccessTime
	if a.Before(hdr.ModTime) {
		a = hdr.ModTime
	}
	return bound(a), bound(hdr.ModTime)
}

// futimens sets the times of the file fd refers to (utimensat(2) with a
// NULL path, which x/sys does not offer).
func futimens(fd int, atime, mtime unix.Timespec) error {
	ts := [2]unix.Timespec{atime, mtime}
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// fdWriter writes to a file descriptor.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(w), p[n:])
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return n, err
		}
		n += m
	}
	return n, nil
}
