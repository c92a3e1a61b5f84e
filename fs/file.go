package fs

import (
	"context"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// handle is an open file of the merged view. A handle opened for writing
// always refers to the upper copy. A read-only handle may refer to a lower
// copy; when the file is copied up while it is open, the handle switches
// to the upper copy on its next use, so readers see the writes (as with the
// kernel's overlay since Linux 4.19).
type handle struct {
	n     *node
	flags int // open flags, without O_CREAT/O_EXCL/O_TRUNC; O_WRONLY may be widened to O_RDWR (writeback.go)

	mu    sync.Mutex
	fd    int
	lower bool // fd is a lower layer's copy
	// onIndex is set when fd is the index entry of a hard-linked lower
	// file (index.go), which later copy-ups link into upper.
	onIndex bool
	// lazy is the lazy lower layer fd reads, and rel the file's path in
	// it, while the handle reads it (lazy.go).
	lazy *layer
	rel  string
	// retired holds the descriptors fd had before a switch to another
	// copy. They stay open until Release: a descriptor handed out by
	// fdForUse is used after h.mu is dropped (Read returns it to go-fuse,
	// which reads from it later), and closing it would let the number be
	// reused for another file, whose data the read would then return.
	retired []int
}

// replaceFd makes fd the handle's descriptor, retiring the old one. The
// caller holds h.mu.
func (h *handle) replaceFd(fd int) {
	h.retired = append(h.retired, h.fd)
	h.fd = fd
}

// writeFlags are the open flags that need an upper copy.
const writeFlags = unix.O_WRONLY | unix.O_RDWR | unix.O_TRUNC

// fdForUse returns the descriptor to use now, switching a lower read-only
// handle to the upper copy once the file has been copied up.
func (h *handle) fdForUse() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lower && h.n.isUpper() && !h.n.isMetacopy() {
		fd, err := unix.Openat(h.n.ov.upper.fd, h.n.rel(), h.flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err == nil {
			h.replaceFd(fd)
			h.lower = false
		}
	} else if name, ok := h.n.indexedName(); ok && h.lower && !h.onIndex {
		// Another name of the file was copied up: read the copy.
		fd, err := unix.Openat(h.n.ov.index.fd, name, h.flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err == nil {
			h.replaceFd(fd)
			h.onIndex = true
		}
	}
	return h.fd
}

// withFd runs fn with the handle's descriptor, which stays open meanwhile.
// done is false when the handle has been released already (the kernel
// sends RELEASE after close(2) returns).
func (h *handle) withFd(fn func(fd int) error) (done bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fd < 0 {
		return false, nil
	}
	return true, fn(h.fd)
}

// trackHandle records an open handle of its node, for operations the
// kernel sends without one (setattr of an unlinked file, for instance).
func (ov *overlay) trackHandle(h *handle) {
	ov.emu.Lock()
	k := h.n.key()
	if ov.openHandles[k] == nil {
		ov.openHandles[k] = map[*handle]struct{}{}
	}
	ov.openHandles[k][h] = struct{}{}
	ov.emu.Unlock()
}

// untrackHandle forgets a closed handle.
func (ov *overlay) untrackHandle(h *handle) {
	ov.emu.Lock()
	k := h.n.key()
	if hs := ov.openHandles[k]; hs != nil {
		delete(hs, h)
		if len(hs) == 0 {
			delete(ov.openHandles, k)
		}
	}
	ov.emu.Unlock()
}

// upperHandle returns f when it is an open upper handle, else any open
// upper handle of node k, else nil.
func (ov *overlay) upperHandle(k nodeKey, f gofs.FileHandle) *handle {
	if h, ok := asHandle(f); ok && !h.lower {
		return h
	}
	// h.mu is taken after emu is released (handlesOf): fdForUse takes them
	// the other way round.
	for _, h := range ov.handlesOf(k) {
		h.mu.Lock()
		lower := h.lower
		h.mu.Unlock()
		if !lower {
			return h
		}
	}
	return nil
}

// switchHandles moves the open read-only handles of node k from its lower
// copy to its upper copy at rel, right after the copy-up: they then read
// the new data and serve fstat, fsetxattr and the like on the upper copy,
// even once the name is gone. (With passthrough the kernel keeps reading
// the lower backing file; see passthrough.go.)
func (ov *overlay) switchHandles(k nodeKey, rel string) {
	ov.switchHandlesOpening(k, func(flags int) (int, error) {
		return unix.Openat(ov.upper.fd, at(rel), flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	})
}

// handlesOf returns the open handles of node k.
func (ov *overlay) handlesOf(k nodeKey) []*handle {
	ov.emu.Lock()
	defer ov.emu.Unlock()
	var open []*handle
	for h := range ov.openHandles[k] {
		open = append(open, h)
	}
	return open
}

func (ov *overlay) switchHandlesOpening(k nodeKey, open func(flags int) (int, error)) {
	for _, h := range ov.handlesOf(k) {
		h.mu.Lock()
		if h.lower && h.fd >= 0 {
			if fd, err := open(h.flags); err == nil {
				h.replaceFd(fd)
				h.lower = false
			}
		}
		h.mu.Unlock()
	}
}

// hasWritableHandle reports whether node k has an upper handle open for
// writing.
func (ov *overlay) hasWritableHandle(k nodeKey) bool {
	for _, h := range ov.handlesOf(k) {
		if h.flags&(unix.O_WRONLY|unix.O_RDWR) != 0 {
			return true
		}
	}
	return false
}

// hasOpenHandle reports whether node k is open at all.
func (ov *overlay) hasOpenHandle(k nodeKey) bool {
	ov.emu.Lock()
	defer ov.emu.Unlock()
	return len(ov.openHandles[k]) > 0
}

// fstat reads the attributes through the open descriptor; ok is false when
// the descriptor may be stale (a lower copy of a file since copied up).
func (h *handle) fstat() (unix.Stat_t, bool) {
	var st unix.Stat_t
	fd := h.fdForUse()
	h.mu.Lock()
	// A metacopy file's descriptor reads its data: its attributes are
	// elsewhere.
	stale := h.lower && (h.n.isUpper() || h.n.isMetacopy())
	h.mu.Unlock()
	if stale || unix.Fstat(fd, &st) != nil {
		return st, false
	}
	return st, true
}

// Open opens the topmost copy; opening for writing or truncation copies the
// file up first.
func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	f := int(flags) &^ (unix.O_APPEND | fuse.FMODE_EXEC | unix.O_CREAT | unix.O_EXCL)
	if f&writeFlags != 0 {
		if n.ov.upper == nil {
			return nil, 0, syscall.EROFS
		}
		n.ov.mu.Lock()
		errno := n.copyUpWith(f&unix.O_TRUNC == 0)
		if errno == 0 && n.ov.hadLowerBacking(n.key()) {
			errno = n.ov.renew(n)
		}
		if errno == 0 && n.staleAfterCopyUp() {
			errno = syscall.ESTALE // open(2) looks the name up again
		}
		n.ov.mu.Unlock()
		if errno != 0 {
			return nil, 0, errno
		}
	}
	n.ov.mu.RLock()
	defer n.ov.mu.RUnlock()
	ls := n.layers()
	if len(ls) == 0 {
		return nil, 0, syscall.ENOENT
	}
	l, p := n.ov.layers[ls[0]], n.pathIn(ls[0])
	if n.isMetacopy() {
		// Open for reading only (writing has copied the data up): read
		// the data where it is (metacopy.go).
		var errno syscall.Errno
		if l, p, errno = n.dataOf(); errno != 0 {
			return nil, 0, errno
		}
	}
	fd, accmode, fopen, err := n.ov.openData(f, func(flags int) (int, error) {
		return openat(l.fd, at(p), flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	})
	if err != nil {
		return nil, 0, errnoOf(err)
	}
	if uid, gid, unprivileged := unprivilegedCaller(ctx); f&unix.O_TRUNC != 0 && unprivileged {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err == nil {
			err = killPrivs(unix.AT_FDCWD, procFdPath(fd), &st, uid, gid)
		}
		if err != nil {
			unix.Close(fd)
			return nil, 0, errnoOf(err)
		}
	}
	h := &handle{n: n, fd: fd, flags: withAccmode(f, accmode) &^ unix.O_TRUNC, lower: l != n.ov.upper, onIndex: l == n.ov.index && l != nil}
	if l.fetch != nil && l != n.ov.upper {
		h.lazy, h.rel = l, p
	}
	n.ov.trackHandle(h)
	if f&unix.O_TRUNC != 0 {
		n.notifyAliases() // size and mtime changed (alias.go)
	}
	// Lower files never change and upper files change only through this
	// mount, so the kernel may keep their pages across opens.
	return n.ov.withPassthrough(h), fuse.FOPEN_KEEP_CACHE | fopen, 0
}

var _ = (gofs.FileReader)((*handle)(nil))

// Read reads from the file.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	fd, lazy := h.fdAndLazy()
	if errno := h.n.ov.fetchData(lazy, h.rel, off, int64(len(dest))); errno != 0 {
		return nil, errno
	}
	return fuse.ReadResultFd(uintptr(fd), off, len(dest)), 0
}

// fdAndLazy is fdForUse, with the lazy layer fd reads (nil once the
// handle has switched to a copy-up of the file).
func (h *handle) fdAndLazy() (int, *layer) {
	fd := h.fdForUse()
	if h.lazy == nil {
		return fd, nil // set at open, never changed: no lock needed
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.lower || h.onIndex {
		return fd, nil
	}
	return fd, h.lazy
}

var _ = (gofs.FileWriter)((*handle)(nil))

// Write writes to the file's upper copy.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	var n int
	var err error
	if h.n.ov.writeback {
		n, err = h.n.ov.writebackWrite(h.n.key(), h.fdForUse(), data, off)
	} else {
		n, err = unix.Pwrite(h.fdForUse(), data, off)
	}
	if n > 0 {
		h.n.notifyAliases() // size and mtime changed (alias.go)
	}
	return uint32(max(n, 0)), errnoOf(err)
}

var _ = (gofs.FileFlusher)((*handle)(nil))

// Flush is called on close(2) of a descriptor. Locks are the kernel's
// (local) and data is written through, so there is nothing to do: ENOSYS
// tells the kernel to stop sending FLUSH at all (one request per close).
func (h *handle) Flush(ctx context.Context) syscall.Errno { return syscall.ENOSYS }

var _ = (gofs.FileFsyncer)((*handle)(nil))

// Fsync flushes the file to its layer.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if h.n.ov.writeback {
		h.n.ov.putBackMtime(h.n.key(), h.fdForUse())
	}
	if h.n.ov.cfg.NoFsync {
		return 0
	}
	if flags&1 != 0 { // FUSE_FSYNC_FDATASYNC
		return errnoOf(unix.Fdatasync(h.fdForUse()))
	}
	return errnoOf(unix.Fsync(h.fdForUse()))
}

var _ = (gofs.FileReleaser)((*handle)(nil))

// Release closes the layer's descriptor and those it had before a
// copy-up. The kernel sends it once no request on the file is in flight.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.n.ov.untrackHandle(h)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n.ov.writeback && h.fd >= 0 {
		h.n.ov.putBackMtime(h.n.key(), h.fd)
	}
	if h.fd >= 0 {
		unix.Close(h.fd)
		h.fd = -1
	}
	for _, fd := range h.retired {
		unix.Close(fd)
	}
	h.retired = nil
	h.n.ov.releaseTmpfile(h)
	return 0
}

var _ = (gofs.FileLseeker)((*handle)(nil))

// Lseek answers SEEK_DATA and SEEK_HOLE from the layer's file.
func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	fd, lazy := h.fdAndLazy()
	if lazy != nil {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return 0, errnoOf(err)
		}
		if errno := h.n.ov.fetchData(lazy, h.rel, 0, st.Size); errno != 0 {
			return 0, errno
		}
	}
	n, err := unix.Seek(fd, int64(off), int(whence))
	return uint64(n), errnoOf(err)
}

var _ = (gofs.FileAllocater)((*handle)(nil))

// Allocate is fallocate(2) on the upper copy.
func (h *handle) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	err := unix.Fallocate(h.fdForUse(), mode, int64(off), int64(size))
	if err == nil {
		h.n.notifyAliases() // size and mtime may have changed (alias.go)
	}
	return errnoOf(err)
}
