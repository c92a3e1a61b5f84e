package fs

import (
	"context"
	"fmt"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// O_TMPFILE files live in the upper layer without a name until linkat(2)
// gives them one. The overlay remembers their open handle by inode number,
// since a later LINK can only reach the file through its descriptor.

// Tmpfile makes an unnamed file in the directory's upper copy.
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*node, gofs.FileHandle, uint32, syscall.Errno) {
	ov := n.ov
	if ov.upper == nil {
		return nil, nil, 0, syscall.EROFS
	}
	ov.mu.Lock()
	defer ov.mu.Unlock()
	if errno := n.copyUp(); errno != 0 {
		return nil, nil, 0, errno
	}
	var pst unix.Stat_t
	if err := ov.upper.lstat(n.rel(), &pst); err != nil {
		return nil, nil, 0, errnoOf(err)
	}
	f := int(flags) &^ (unix.O_APPEND | fuse.FMODE_EXEC | unix.O_CREAT | unix.O_EXCL)
	fd, accmode, fopen, err := ov.openData(f, func(flags int) (int, error) {
		return unix.Openat(ov.upper.fd, at(n.rel()), flags|unix.O_TMPFILE|unix.O_CLOEXEC, mode&0o7777)
	})
	if err != nil {
		return nil, nil, 0, errnoOf(err)
	}
	id := ov.identityFor(ctx, unix.S_IFREG|mode, &pst, true)
	if id.chown {
		err = unix.Fchown(fd, id.uid, id.gid)
	}
	if err == nil {
		err = unix.Fchmod(fd, id.perm)
	}
	if err != nil {
		unix.Close(fd)
		return nil, nil, 0, errnoOf(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, nil, 0, errnoOf(err)
	}
	ino := ov.inoOf(&st)
	n.fillAttr(&st, &out.Attr)
	out.Attr.Ino = ino
	ch := &node{ov: ov, inode: inode{attr: gofs.StableAttr{Mode: unix.S_IFREG, Ino: ino}}}
	ch.setState([]int{0}, nil)
	h := &handle{n: ch, fd: fd, flags: withAccmode(f, accmode) &^ unix.O_TRUNC}
	ov.trackHandle(h)
	ov.emu.Lock()
	ov.tmpfiles[ino] = h
	ov.emu.Unlock()
	return ch, h, fopen, 0
}

func procFdPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }

// tmpfileFd returns the descriptor of an unnamed O_TMPFILE file.
func (ov *overlay) tmpfileFd(ino uint64) (int, bool) {
	ov.emu.Lock()
	defer ov.emu.Unlock()
	h, ok := ov.tmpfiles[ino]
	if !ok {
		return -1, false
	}
	return h.fd, true
}

// linkedTmpfile notes that a file now has a name.
func (ov *overlay) linkedTmpfile(ino uint64) {
	ov.emu.Lock()
	delete(ov.tmpfiles, ino)
	ov.emu.Unlock()
}

// releaseTmpfile forgets an unnamed file whose handle is closed.
func (ov *overlay) releaseTmpfile(h *handle) {
	ino := h.n.ino()
	ov.emu.Lock()
	if ov.tmpfiles[ino] == h {
		delete(ov.tmpfiles, ino)
		h.n.forgetState()
	}
	ov.emu.Unlock()
}
