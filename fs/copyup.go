package fs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// processID is this process's pid, read once: os.Getpid is a system call
// on every copy-up otherwise.
var processID = os.Getpid()

// tempName returns a fresh name for an object being prepared in the work
// directory, in the kernel's "#..." style.
func (ov *overlay) tempName() string {
	return "#uf" + strconv.FormatUint(uint64(processID), 16) + "." + strconv.FormatUint(ov.tmpSeq.Add(1), 16)
}

// copyUp gives n a copy in the upper layer, parents first, so that it can
// be changed. The copy is built in the work directory with its data, mode,
// owner, times and xattrs, then renamed into place, so upper never shows a
// half-copied object. The caller holds ov.mu exclusively.
// With metacopy on, a regular file is copied without its data
// (metacopy.go).
func (n *node) copyUp() syscall.Errno {
	if n.ov.metacopy {
		return n.copyUpAs(copyMeta)
	}
	return n.copyUpAs(copyWithData)
}

// copyUpWith copies n up with its data, for a write; withData false leaves
// a regular file empty, for an open with O_TRUNC that would throw the data
// away anyway (as the kernel). A metacopy file gets its data.
func (n *node) copyUpWith(withData bool) syscall.Errno {
	if withData {
		return n.copyUpAs(copyWithData)
	}
	return n.copyUpAs(copyEmpty)
}

// copyUpAs is copyUp, taking along what mode says.
func (n *node) copyUpAs(mode copyMode) syscall.Errno {
	ov := n.ov
	if ov.upper == nil {
		return syscall.EROFS
	}
	if n.isUpper() {
		if mode != copyMeta && n.isMetacopy() {
			return n.copyUpData(mode == copyWithData)
		}
		return 0
	}
	_, parent := n.Parent()
	if parent == nil {
		return syscall.ENOENT // an unlinked node; the root always has an upper copy
	}
	pn := parent
	if errno := pn.copyUp(); errno != 0 {
		return errno
	}
	layers := n.layers()
	if len(layers) == 0 {
		return syscall.ENOENT
	}
	src := ov.layers[layers[0]]
	rel := n.rel()
	srcPath := n.pathIn(layers[0])
	var st unix.Stat_t
	if err := src.lstat(srcPath, &st); err != nil {
		return errnoOf(err)
	}

	// Keep the parent's times: adding the child is not a change users made.
	var pst unix.Stat_t
	parentRel := dir(rel)
	havePst := ov.upper.lstat(parentRel, &pst) == nil

	// A hard-linked lower file goes through the index with index=on: its
	// names stay links to one copy (index.go).
	wasMeta := n.isMetacopy()
	indexed := src == ov.index || src.lower && ov.indexing(&st) && !wasMeta
	meta := mode == copyMeta && st.Mode&unix.S_IFMT == unix.S_IFREG && !indexed
	data := copySource{src, srcPath}
	if wasMeta && !meta && mode == copyWithData {
		l, p, errno := n.dataOf()
		if errno != 0 {
			return errno
		}
		data = copySource{l, p}
	}
	if indexed {
		if err := ov.copyUpIndexed(n, src, srcPath, &st, rel); err != nil {
			ov.logf("copy-up %s: %v", rel, err)
			return errnoOf(err)
		}
	} else if errno := ov.copyUpPlain(src, srcPath, &st, rel, data, mode, meta); errno != 0 {
		return errno
	}
	if havePst {
		setTimes(ov.upper.fd, at(parentRel), &pst)
	}

	var ust unix.Stat_t
	if err := ov.upper.lstat(rel, &ust); err != nil {
		return errnoOf(err)
	}
	if isDirStat(&st) || st.Nlink <= 1 || indexed {
		ov.recordCopyUp(&ust, n.ino())
	}
	if n.key().gen.isLowerLink() {
		// A hard-linked file's copy is a new file (the link is broken, as
		// in the kernel) with its own number: the directory listing the
		// kernel may hold shows the old one, and the attributes it holds
		// for descriptors already open are the lower file's (offset -1:
		// attributes only).
		parent.NotifyContent(0, 0)
		n.NotifyContent(-1, 0)
		// Descriptors open on n now read the copy, which its name will
		// show under a new inode: see alias.go.
		ov.supersede(n, ov.inoOf(&ust), rel)
	}
	if meta {
		// Open descriptors go on reading the data where it is.
		n.addMetaUpper()
		return 0
	}
	n.addUpper(isDirStat(&st))
	ov.switchHandles(n.key(), rel)
	if indexed {
		n.notifyAliases() // the other names now read the copy
	}
	return 0
}

// copySource is where a copy-up reads a regular file's data: the object
// copied, or the data of a metacopy file.
type copySource struct {
	l    *layer
	path string
}

// copyUpPlain builds the copy of srcPath in src (attributes st) in the
// work directory and renames it to rel in upper: with the data at data
// (mode copyWithData), without (copyEmpty), or a metacopy file (meta).
func (ov *overlay) copyUpPlain(src *layer, srcPath string, st *unix.Stat_t, rel string, data copySource, mode copyMode, meta bool) syscall.Errno {
	tmp := ov.tempName()
	if err := ov.buildCopy(src, srcPath, st, tmp, data, mode == copyWithData, meta); err != nil {
		ov.removeTemp(tmp, st)
		ov.logf("copy-up %s: %v", rel, err)
		return errnoOf(err)
	}
	if isDirStat(st) || st.Nlink <= 1 {
		// A hard-linked file's copy is a new file: no origin (as the
		// kernel without index=on).
		ov.setOrigin(src, srcPath, tmp)
	}
	// As the kernel's, every copy-up marks the upper parent impure.
	ov.markImpure(dir(rel))
	if err := unix.Renameat(ov.work.fd, tmp, ov.upper.fd, rel); err != nil {
		ov.removeTemp(tmp, st)
		return errnoOf(err)
	}
	return 0
}

// copyUpRenamed copies n up like copyUp, for an operation the kernel
// retries after ESTALE (a path-based one). It answers ESTALE when the copy
// has a new identity the kernel must look up first: a hard-linked lower
// file, whose copy is a new file with its own st_ino.
func (n *node) copyUpRenamed() syscall.Errno { return n.copyUpRenamedAs(false) }

// copyUpFor is copyUp; withData copies the data of a regular file even
// with metacopy on.
func (n *node) copyUpFor(withData bool) syscall.Errno {
	if withData {
		return n.copyUpWith(true)
	}
	return n.copyUp()
}

// copyUpRenamedAs is copyUpRenamed; withData copies the data of a regular
// file even with metacopy on.
func (n *node) copyUpRenamedAs(withData bool) syscall.Errno {
	if errno := n.copyUpFor(withData); errno != 0 {
		return errno
	}
	if n.staleAfterCopyUp() {
		return syscall.ESTALE
	}
	return 0
}

// copyUpForChange copies n up for a change of its attributes or xattrs.
// The kernel retries path-based calls (chmod, setxattr, ...) after ESTALE,
// but not fd-based ones (fchmod, fsetxattr), and FUSE does not say which it
// got. When a regular file is not open, the call came by path, and a
// hard-linked lower file (whose copy is a new inode) answers ESTALE;
// so does a symlink, which has no descriptor-based calls; otherwise the
// stale kernel entry is dropped in the background. Fifos and
// device nodes are opened without the server (no handle tells an fd-based
// call apart), so they always take the second way: fchmod on a fifo must
// not fail with ESTALE, which no one retries. withData copies the data of
// a regular file even with metacopy on, for a truncation.
func (n *node) copyUpForChange(withData bool) syscall.Errno {
	if t := n.StableAttr().Mode & unix.S_IFMT; t == unix.S_IFLNK || t == unix.S_IFREG && !n.ov.hasOpenHandle(n.key()) {
		return n.copyUpRenamedAs(withData)
	}
	if errno := n.copyUpFor(withData); errno != 0 {
		return errno
	}
	n.dropStaleEntry()
	return 0
}

// staleAfterCopyUp reports whether the kernel's inode for n no longer
// names n's object: n was a name of a hard-linked lower file
// (generation.isLowerLink) that has since been copied up.
func (n *node) staleAfterCopyUp() bool {
	return n.key().gen.isLowerLink() && n.isUpper()
}

// dropStaleEntry asks the kernel, in the background, to forget n's name if
// it no longer names n's object, for operations the kernel does not retry.
func (n *node) dropStaleEntry() {
	if !n.staleAfterCopyUp() {
		return
	}
	if name, parent := n.Parent(); parent != nil {
		n.ov.invalPending.Add(1)
		go func() {
			defer n.ov.invalPending.Add(-1)
			parent.NotifyEntry(name)
		}()
	}
}

// waitInvalidations waits, at most 100 ms, for the entry invalidations
// sent in the background to land, so that a directory opened now lists
// numbers its names agree with. Only called where the kernel holds no
// directory lock the invalidation needs (opendir).
func (ov *overlay) waitInvalidations() {
	for i := 0; ov.invalPending.Load() > 0 && i < 100; i++ {
		time.Sleep(time.Millisecond)
	}
}

// buildCopy creates tmp in the work directory as a copy of rel in src,
// with the data of a regular file read at data, or as a metacopy file.
func (ov *overlay) buildCopy(src *layer, rel string, st *unix.Stat_t, tmp string, data copySource, withData, meta bool) error {
	w := ov.work.fd
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		var err error
		switch {
		case meta:
			err = ov.buildMetacopy(tmp, st)
		case withData && st.Size > 0 && ov.fetchData(data.l, data.path, 0, st.Size) != 0:
			err = syscall.EIO // a lazy layer's data could not be fetched (lazy.go)
		default:
			err = copyFile(data.l, data.path, w, tmp, st, withData)
		}
		if err != nil {
			return err
		}
	case unix.S_IFDIR:
		if err := unix.Mkdirat(w, tmp, 0o700); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := src.readlink(rel)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(string(target), w, tmp); err != nil {
			return err
		}
	default:
		if err := unix.Mknodat(w, tmp, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			return err
		}
	}
	return ov.copyMetadata(w, tmp, st, func() error { return ov.copyXattrs(src, rel, tmp) })
}

// copyMetadata gives the object path (relative to dirfd) the owner, mode
// and times of st, and runs copyXattrs in between: after chown, which
// clears file capabilities (security.capability) and set-id bits, and
// before chmod and the times, which the xattrs must not disturb.
func (ov *overlay) copyMetadata(dirfd int, path string, st *unix.Stat_t, copyXattrs func() error) error {
	if ov.privileged {
		err := unix.Fchownat(dirfd, path, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
		// In a user namespace, owners without a mapping cannot be given;
		// the copy keeps the server's (mapped) owner, as fuse-overlayfs does.
		if err != nil && (ov.initUserNS || err != unix.EINVAL && err != unix.EPERM) {
			return err
		}
	}
	if err := copyXattrs(); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(dirfd, path, st.Mode&0o7777, 0); err != nil {
			return err
		}
	}
	return setTimes(dirfd, path, st)
}

// setTimes sets the access and modification times of path to those of st.
func setTimes(dirfd int, path string, st *unix.Stat_t) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(dirfd, path, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// copyXattrs copies the user-visible extended attributes of rel in src to
// tmp in the work directory. The overlay's private attributes stay behind.
func (ov *overlay) copyXattrs(src *layer, rel, tmp string) error {
	names, err := src.listxattr(rel)
	if err != nil {
		if err == unix.ENOTSUP {
			return nil
		}
		return err
	}
	for _, name := range names {
		if ov.xattr.IsPrivate(name) {
			continue
		}
		val, err := src.getxattrAll(rel, name)
		if err != nil {
			if err == unix.ENODATA {
				continue
			}
			return err
		}
		if err := ov.work.setxattr(tmp, name, val, 0); err != nil {
			if !ov.privileged && (strings.HasPrefix(name, "trusted.") || strings.HasPrefix(name, "security.")) {
				continue // attributes only root may set
			}
			return fmt.Errorf("copy xattr %s: %w", name, err)
		}
	}
	return nil
}

// removeTemp deletes a half-built object from the work directory.
func (ov *overlay) removeTemp(tmp string, st *unix.Stat_t) {
	if st != nil && isDirStat(st) {
		removeAllAt(ov.work.fd, tmp)
		return
	}
	unix.Unlinkat(ov.work.fd, tmp, 0)
}

// copyFile copies the regular file rel of src to tmp (relative to dirfd),
// sharing blocks (reflink) where the filesystem can and keeping holes.
func copyFile(src *layer, rel string, dirfd int, tmp string, st *unix.Stat_t, withData bool) error {
	in, err := unix.Openat(src.fd, rel, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer unix.Close(in)
	out, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(out)
	if st.Size == 0 || !withData {
		return nil
	}
	if unix.IoctlFileClone(out, in) == nil {
		return nil
	}
	if err := copyData(in, out, st.Size); err != nil {
		return err
	}
	return unix.Ftruncate(out, st.Size)
}

// copyData copies the data extents of in to out, skipping holes.
func copyData(in, out int, size int64) error {
	for off := int64(0); off < size; {
		data, err := unix.Seek(in, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			return nil // only a hole is left
		}
		hole := size
		if err != nil {
			data = off // SEEK_DATA unsupported: copy everything
		} else if h, err := unix.Seek(in, data, unix.SEEK_HOLE); err == nil {
			hole = h
		}
		if err := copyRange(in, out, data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// copyRange copies length bytes at off, with copy_file_range when the
// kernel can and read/write otherwise.
func copyRange(in, out int, off, length int64) error {
	for length > 0 {
		roff, woff := off, off
		n, err := unix.CopyFileRange(in, &roff, out, &woff, int(min(length, 1<<30)), 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return copyRangeRW(in, out, off, length)
		}
		off += int64(n)
		length -= int64(n)
	}
	return nil
}

func copyRangeRW(in, out int, off, length int64) error {
	buf := make([]byte, 1<<20)
	for length > 0 {
		n, err := unix.Pread(in, buf[:min(int64(len(buf)), length)], off)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if _, err := unix.Pwrite(out, buf[:n], off); err != nil {
			return err
		}
		off += int64(n)
		length -= int64(n)
	}
	return nil
}

// removeAllAt removes path (relative to dirfd) and everything below it.
func removeAllAt(dirfd int, path string) error {
	err := unix.Unlinkat(dirfd, path, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	fd, err := unix.Openat(dirfd, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	ents, err := readLayerDir(&layer{fd: fd}, "")
	if err == nil {
		for _, e := range ents {
			if rerr := removeAllAt(fd, e.name); rerr != nil && err == nil {
				err = rerr
			}
		}
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, path, unix.AT_REMOVEDIR)
}
