package fs

import (
	"fmt"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The kernel's writeback cache (FUSE_WRITEBACK_CACHE) turns write(2) into
// a page-cache write: the kernel sends the dirty pages later, in large
// WRITE requests, on fsync, close, memory pressure or after
// dirty_expire_centisecs. Without passthrough (every mount without root)
// it is what makes small writes cost what they cost on a local
// filesystem instead of a round trip each.
//
// In exchange the kernel becomes the authority on a regular file's size
// and times for as long as it holds the inode: it never again takes them
// from this server's attributes. That is sound while each object has one
// kernel inode, so the mode is kept off where one object may have two
// (alias.go):
//
//   - with passthrough, which renews inodes after a copy-up (and which
//     the kernel refuses together with the writeback cache anyway);
//   - with index=on, whose hard-linked lower names share one copy;
//   - with metacopy=on, whose data copy-up on the first open for writing
//     sets a modification time (as the kernel's overlay does) that the
//     kernel would not take.
//
// The one alias left, a hard-linked lower file copied up while a
// descriptor is open on it, differs from the kernel's overlay only for
// that descriptor: fstat(2) through it keeps the size it saw last (see
// docs/unionfuse.1.md).
//
// The kernel keeps the modification time too: it sets it on write(2)
// and sends it with a SETATTR when it writes the inode back, unless the
// time it would set is the one it has (a write in the same clock tick as
// the file's creation). So the time the pages it sends give the upper
// file is put back to the kernel's by a release of the file or an fsync:
// the time the file had when its first page came, or the last the kernel
// sent since (writebackWrite, kernelSentMtime, putBackMtime). Nor does a
// truncate(2) sent without a time change the time here
// (keepMtimeOnTruncate): the kernel sends one so when the size does not
// change, where POSIX asks for no new time, although ext4 and the
// kernel's overlay on it set one.
//
// The kernel may also read pages of a file opened only for writing (to
// fill a partial page), so such files are opened for reading too here
// (openData); one this server may not read is served without the page
// cache (FOPEN_DIRECT_IO). O_APPEND is the kernel's business then (it
// knows the size), which it already is for every open here.

// WritebackMode says whether the kernel's writeback cache is used (the
// mount option writeback=).
type WritebackMode int

const (
	// WritebackAuto uses the writeback cache wherever it is sound: when
	// no passthrough serves the data, index=off and metacopy=off.
	WritebackAuto WritebackMode = iota
	// WritebackOn asks for it, which turns passthrough off; refused with
	// index=on or metacopy=on.
	WritebackOn
	// WritebackOff sends every write to this server as it is made.
	WritebackOff
)

// validateWriteback refuses a writeback mode the union cannot have.
func (c *Config) validateWriteback() error {
	if c.Writeback == WritebackOn && c.Index {
		return fmt.Errorf("writeback=on cannot be used with index=on: hard-linked lower files there have a kernel inode per name, whose cached sizes would go stale")
	}
	if c.Writeback == WritebackOn && c.Metacopy {
		return fmt.Errorf("writeback=on cannot be used with metacopy=on: the copy-up of a metacopy file's data sets a modification time the kernel would not see")
	}
	return nil
}

// useWriteback decides, while mounting and once passthrough is decided,
// whether the kernel's writeback cache is asked for.
func (ov *overlay) useWriteback() bool {
	if ov.cfg.ReadOnly() {
		return false // nothing is ever written
	}
	switch ov.cfg.Writeback {
	case WritebackOn:
		return true
	case WritebackOff:
		return false
	}
	return !ov.passthrough && !ov.cfg.Index && !ov.cfg.Metacopy
}

// openData opens a regular file for a handle through open, with flags,
// and returns the access mode it was opened with and the FOPEN flags the
// handle needs beyond the usual ones. With the writeback cache a file
// opened only for writing is opened for reading too; one this server may
// not read is served without the page cache.
func (ov *overlay) openData(flags int, open func(flags int) (int, error)) (fd, accmode int, fopen uint32, err error) {
	accmode = flags & unix.O_ACCMODE
	if ov.writeback && accmode == unix.O_WRONLY {
		fd, err = open(flags&^unix.O_ACCMODE | unix.O_RDWR)
		if err == nil {
			return fd, unix.O_RDWR, 0, nil
		}
		if err != syscall.EACCES {
			return -1, 0, 0, err
		}
		fopen = fuse.FOPEN_DIRECT_IO
	}
	fd, err = open(flags)
	return fd, accmode, fopen, err
}

// withAccmode is flags with the access mode accmode.
func withAccmode(flags, accmode int) int { return flags&^unix.O_ACCMODE | accmode }

// writebackWrite writes data at off in fd, pages the writeback cache
// sends for node k. The first page of a run records the file's
// modification time, the kernel's, for putBackMtime: one fstat(2) a run,
// not a pair of calls a page. (A run: the pages sent since the file's last
// release or fsync.)
func (ov *overlay) writebackWrite(k nodeKey, fd int, data []byte, off int64) (int, error) {
	ov.emu.Lock()
	_, running := ov.keptMtimes[k]
	ov.emu.Unlock()
	if !running {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return 0, err
		}
		ov.emu.Lock()
		if _, ok := ov.keptMtimes[k]; !ok { // a time the kernel sent meanwhile wins
			ov.keptMtimes[k] = st.Mtim
		}
		ov.emu.Unlock()
	}
	return unix.Pwrite(fd, data, off)
}

// kernelSentMtime records mtime, which the kernel has just set on node k,
// as the time the kernel keeps, while the file is open: pages it sent
// before may still be written after it (background writeback does not
// wait for them), and the release puts it back then.
func (ov *overlay) kernelSentMtime(k nodeKey, mtime unix.Timespec) {
	ov.emu.Lock()
	defer ov.emu.Unlock()
	if len(ov.openHandles[k]) > 0 {
		ov.keptMtimes[k] = mtime
	} else {
		delete(ov.keptMtimes, k)
	}
}

// putBackMtime gives the file open as fd the time the kernel keeps for
// node k, should a run be open, and ends the run.
func (ov *overlay) putBackMtime(k nodeKey, fd int) {
	ov.emu.Lock()
	mtime, running := ov.keptMtimes[k]
	delete(ov.keptMtimes, k)
	ov.emu.Unlock()
	if !running {
		return
	}
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, mtime}
	if err := futimens(fd, ts); err != nil {
		ov.logf("writeback: the modification time of a written file: %v", err)
	}
}

// keepMtimeOnTruncate returns in, on a writeback mount, with the regular
// file's modification time as it is now when in truncates without one.
func (n *node) keepMtimeOnTruncate(in *fuse.SetAttrIn) *fuse.SetAttrIn {
	if !n.ov.writeback || in.Valid&fuse.FATTR_SIZE == 0 || in.Valid&fuse.FATTR_MTIME != 0 {
		return in
	}
	var st unix.Stat_t
	if n.stat(&st) != 0 || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return in
	}
	kept := *in
	kept.Valid |= fuse.FATTR_MTIME
	kept.Mtime, kept.Mtimensec = uint64(st.Mtim.Sec), uint32(st.Mtim.Nsec)
	return &kept
}
