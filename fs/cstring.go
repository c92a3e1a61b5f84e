package fs

import (
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// System calls on a name without garbage.
//
// x/sys/unix copies every path it passes to the kernel into a fresh
// NUL-terminated slice on the heap. A cold walk makes a few of those
// calls per name (the stat of each layer's copy, the metacopy and
// whiteout attributes, the opening of each layer's directory), and their
// copies were an eighth of the bytes it allocated: the collector's work,
// and the headroom it keeps. The calls here copy a short name into a
// buffer on the caller's stack instead; a name too long for it is copied
// to the heap as before.

// cName is room for a NUL-terminated name on the caller's stack.
type cName [256]byte

// ptr returns s NUL-terminated, in b when it fits. The result is only
// valid while b is.
func (b *cName) ptr(s string) (*byte, error) {
	if len(s) >= len(b) {
		return unix.BytePtrFromString(s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return nil, unix.EINVAL
	}
	copy(b[:], s)
	b[len(s)] = 0
	return &b[0], nil
}

// joined returns join(dir, name) NUL-terminated, in b when it fits: the
// path of a name that may not exist, not built as a string unless it does.
func (b *cName) joined(dir, name string) (*byte, error) {
	if dir == "" {
		return b.ptr(name)
	}
	if len(dir)+1+len(name) >= len(b) {
		return unix.BytePtrFromString(join(dir, name))
	}
	if strings.IndexByte(dir, 0) >= 0 || strings.IndexByte(name, 0) >= 0 {
		return nil, unix.EINVAL
	}
	n := copy(b[:], dir)
	b[n] = '/'
	n += 1 + copy(b[n+1:], name)
	b[n] = 0
	return &b[0], nil
}

// fstatat is unix.Fstatat (fstatatIn: fstatat_raw.go, fstatat_other.go).
func fstatat(dirfd int, path string, st *unix.Stat_t, flags int) error {
	return fstatatIn(dirfd, "", path, st, flags)
}

// openat is unix.Openat.
func openat(dirfd int, path string, flags int, mode uint32) (int, error) {
	var b cName
	p, err := b.ptr(path)
	if err != nil {
		return -1, err
	}
	fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(flags|unix.O_LARGEFILE), uintptr(mode), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}
