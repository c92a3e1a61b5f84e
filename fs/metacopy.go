package fs

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// Metadata-only copy-up (Config.Metacopy), as the kernel's metacopy=on.
//
// A change of a regular file's metadata alone — chmod, chown, utimes,
// setxattr, rename, link — copies up the inode without its data: the
// upper copy is a sparse file of the same size, with the owner, mode,
// times and xattrs, marked with an empty overlay.metacopy attribute. Its
// data stays in the lower layer, where lookups find it by going on down
// from the metacopy file as they would for a directory (resolve), through
// the file's overlay.redirect when it has one: a renamed metacopy file
// records where it came from (its old name, or its old path from the root
// when it left its directory), and so does a hard-linked one (always a
// path from the root), as the kernel's ovl_set_redirect. A node of a
// metacopy file has two layers (entry.layers): the top copy, which holds
// the metadata, and the layer of the data.
//
// Reads go to the data file (also with passthrough); stat shows the top
// copy with the data's st_blocks. The first open for writing, or a
// truncation, copies the data into the upper file in place and only then
// removes overlay.metacopy (the kernel's ovl_copy_up_meta_inode_data): up
// to that point the upper file's own content is never read, so a crash
// half-way leaves a metacopy file that still reads the lower data.
//
// As in the kernel, a lookup that meets a metacopy file with metacopy off
// fails with EPERM ("refusing to follow metacopy origin"), and one that
// finds no data below it with EIO. Hard-linked lower files copied up
// through the index (index=on) are copied with their data: unlike the
// kernel, the index never holds a metacopy file.

// copyMode says what a copy-up of a regular file takes along.
type copyMode int

const (
	copyWithData copyMode = iota // the data
	copyEmpty                    // no data: it is about to be truncated away
	copyMeta                     // the metadata only, with metacopy on
)

// checkMetacopy refuses what the kernel's ovl_fs_params_verify refuses
// with metacopy=on: a redirect_dir= other than on (follow will do for a
// read-only union).
func (c *Config) checkMetacopy() error {
	if !c.Metacopy {
		return nil
	}
	r := c.Redirect
	if r == RedirectOn || c.ReadOnly() && (r == RedirectFollow || r == RedirectOff) {
		return nil
	}
	if r == RedirectOff {
		r = RedirectFollow // the kernel's redirect_dir=off with redirect_always_follow
	}
	return fmt.Errorf("conflicting options: metacopy=on,redirect_dir=%s", r)
}

// checkMetacopyXattr refuses metacopy=on with user.overlay.* attributes,
// as the kernel does: anyone may set them on their own files, which would
// make a metacopy file read the data of a file they cannot read.
func (c *Config) checkMetacopyXattr() error {
	if c.Metacopy && c.UserXattr {
		return errors.New("conflicting options: userxattr,metacopy=on")
	}
	return nil
}

// isMetacopyFile reports whether rel in l, with attributes st, is a
// metacopy file (the kernel's ovl_check_metacopy_xattr).
func (ov *overlay) isMetacopyFile(l *layer, rel string, st *unix.Stat_t) (bool, syscall.Errno) {
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, 0
	}
	_, err := l.getxattr(rel, ov.xattr.Metacopy, nil)
	switch err {
	case nil:
		return true, 0
	case unix.ENODATA, unix.ENOTSUP:
		return false, 0
	}
	return false, errnoOf(err)
}

// followMetacopy is the kernel's ovl_check_follow_redirect for a lookup
// about to go on below a metacopy file: refused with metacopy off, and
// through a redirect with redirect_dir=nofollow.
func (ov *overlay) followMetacopy(s *lookup, rel string) syscall.Errno {
	if !s.metacopy {
		return 0
	}
	if !ov.metacopy {
		ov.logf("refusing to follow metacopy origin for %s", rel)
		return syscall.EPERM
	}
	if s.redirected && !ov.redirect.follows() {
		ov.logf("refusing to follow the redirect of %s (redirect_dir=nofollow)", rel)
		return syscall.EPERM
	}
	return 0
}

// metacopyData finishes the lookup of rel when the last file found is a
// metacopy file: its data is in a data-only layer when an absolute
// redirect of a lower layer's file leads there; anything else is a
// metacopy file without data (EIO), as in the kernel.
func (ov *overlay) metacopyData(s *lookup, rel string, f *found, paths *[]string) syscall.Errno {
	lowerFound := ov.upper == nil || f.layers[len(f.layers)-1] != 0
	if lowerFound && len(ov.dataLayers) > 0 && s.absRedirect {
		var st unix.Stat_t
		li, p, errno := ov.lookupData(s.name, &st)
		if errno != 0 {
			ov.logf("%s: the data %s of the metacopy file is in no data-only layer: %v", rel, s.name, errno)
			f.dataErr = errno
			f.st.Blocks = guessBlocks(f.st.Size)
			f.layers, *paths = f.layers[:1], (*paths)[:1]
			s.redirected = true
			return 0
		}
		f.layers, *paths = append(f.layers[:1], li), append((*paths)[:1], p)
		f.st.Blocks = st.Blocks
		s.redirected = true
		return 0
	}
	if errno := ov.followMetacopy(s, rel); errno != 0 {
		return errno
	}
	ov.logf("metacopy with no lower data found: %s", rel)
	return syscall.EIO
}

// isMetacopy reports whether n is a metacopy file: its top copy holds its
// metadata, its data is in a layer below.
func (n *node) isMetacopy() bool {
	e := n.state.Load()
	if e == nil || n.StableAttr().Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	return e.dataErr != 0 || len(e.layers) == 2
}

// dataOf returns the layer and path of the data of n, a metacopy file.
func (n *node) dataOf() (*layer, string, syscall.Errno) {
	e := n.state.Load()
	switch {
	case e == nil:
		return nil, "", syscall.ENOENT
	case e.dataErr != 0:
		return nil, "", e.dataErr
	case len(e.layers) < 2:
		return nil, "", syscall.EIO
	}
	li := e.layers[len(e.layers)-1]
	return n.ov.layers[li], n.pathIn(li), 0
}

// lowerLinked reports whether the data of n, a metacopy file, is a hard
// link: its redirect must then be a path from the root even within one
// directory, as another name may be copied up elsewhere (the kernel's
// ovl_need_absolute_redirect).
func (n *node) lowerLinked() bool {
	l, p, errno := n.dataOf()
	var st unix.Stat_t
	return errno == 0 && l.lstat(p, &st) == nil && st.Nlink > 1
}

// metaState returns n's state with the path of its data recorded, for a
// metacopy file that is about to get another name.
func (n *node) metaState() *entry {
	e := n.state.Load()
	if e == nil || len(e.layers) < 2 {
		return e
	}
	li := e.layers[len(e.layers)-1]
	n.ov.redirected.Store(true)
	return &entry{layers: e.layers, paths: []string{"", n.pathIn(li)}, dataErr: e.dataErr}
}

// addMetaUpper records that n, just copied up without its data, now has
// its metadata in upper and its data where its top copy had it.
func (n *node) addMetaUpper() {
	old := n.state.Load()
	if old == nil {
		return
	}
	e := &entry{layers: []int{0, old.layers[len(old.layers)-1]}, dataErr: old.dataErr}
	if old.dataErr != 0 {
		e.layers = e.layers[:1]
	}
	if old.paths != nil {
		e.paths = []string{"", old.paths[len(old.paths)-1]}
		n.ov.redirected.Store(true)
	}
	n.state.Store(e)
}

// fillDataBlocks reports in out the blocks of n's data, when n is a
// metacopy file: what du(1) counts (the kernel's ovl_getattr). Missing
// data counts as if it were not sparse, as the kernel guesses it.
func (n *node) fillDataBlocks(size int64, out *uint64) {
	if !n.isMetacopy() {
		return
	}
	l, p, errno := n.dataOf()
	var st unix.Stat_t
	if errno == 0 && l.lstat(p, &st) == nil {
		*out = uint64(st.Blocks)
		return
	}
	*out = uint64(guessBlocks(size))
}

// guessBlocks is the kernel's guess at the blocks of data not looked up:
// the size rounded up to a 4 KiB block, in 512-byte units.
func guessBlocks(size int64) int64 { return (size + 4095) / 4096 * 8 }

// buildMetacopy makes tmp in the work directory a metacopy of the
// regular file with attributes st: empty, of st's size, marked with
// overlay.metacopy (the kernel's ovl_copy_up_metadata with c->metacopy).
func (ov *overlay) buildMetacopy(tmp string, st *unix.Stat_t) error {
	fd, err := unix.Openat(ov.work.fd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fsetxattr(fd, ov.xattr.Metacopy, nil, 0); err != nil {
		return err
	}
	return unix.Ftruncate(fd, st.Size)
}

// copyUpData gives n, a metacopy file in upper, its data: copied in place
// into the upper file (withData false: none, for a truncation to zero),
// synced, and only then the metacopy mark removed. security.capability
// survives the writes, as in the kernel. The caller holds ov.mu
// exclusively.
func (n *node) copyUpData(withData bool) syscall.Errno {
	ov := n.ov
	rel := n.rel()
	out, err := unix.Openat(ov.upper.fd, at(rel), unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return errnoOf(err)
	}
	defer unix.Close(out)
	var st unix.Stat_t
	if err := unix.Fstat(out, &st); err != nil {
		return errnoOf(err)
	}
	caps, capErr := ov.upper.getxattrAll(rel, capabilityXattr)
	if withData && st.Size > 0 {
		l, p, errno := n.dataOf()
		if errno == 0 {
			errno = n.ov.fetchData(l, p, 0, st.Size)
		}
		if errno != 0 {
			return errno
		}
		in, err := unix.Openat(l.fd, at(p), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return errnoOf(err)
		}
		err = unix.IoctlFileClone(out, in)
		if err != nil {
			err = copyData(in, out, st.Size)
		}
		unix.Close(in)
		if err != nil {
			ov.logf("copy-up of the data of %s: %v", rel, err)
			return errnoOf(err)
		}
		if err := unix.Ftruncate(out, st.Size); err != nil {
			return errnoOf(err)
		}
		// The kernel writes the data into the upper file, which changes
		// its mtime; a clone may not.
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_NOW}}
		if err := futimens(out, ts); err != nil {
			return errnoOf(err)
		}
	} else if !withData {
		if err := unix.Ftruncate(out, 0); err != nil {
			return errnoOf(err)
		}
	}
	if !ov.cfg.NoFsync {
		if err := unix.Fsync(out); err != nil {
			return errnoOf(err)
		}
	}
	if capErr == nil {
		if err := unix.Fsetxattr(out, capabilityXattr, caps, 0); err != nil {
			return errnoOf(err)
		}
	}
	if err := unix.Fremovexattr(out, ov.xattr.Metacopy); err != nil && err != unix.ENODATA {
		return errnoOf(err)
	}
	n.addUpper(false)
	ov.switchHandles(n.key(), rel)
	// Its mtime and blocks changed: the kernel's attributes of it, and of
	// other names of it, are stale (offset -1: attributes only).
	n.NotifyContent(-1, 0)
	n.notifyAliases()
	return 0
}
