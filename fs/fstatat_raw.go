//go:build amd64 || arm64 || riscv64 || ppc64 || ppc64le || s390x

package fs

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// On these architectures x/sys/unix's Fstatat is newfstatat(2) into
// unix.Stat_t as it is; elsewhere it converts the kernel's struct or
// calls statx, and fstatat_other.go calls it (cstring.go says why).

// rawFstatat says whether fstatat copies its path on the stack.
const rawFstatat = true

// fstatatIn is fstatat of name in directory dir (union-relative, "" for
// the root), its path copied on the stack.
func fstatatIn(dirfd int, dir, name string, st *unix.Stat_t, flags int) error {
	var b cName
	p, err := b.joined(dir, name)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(st)), uintptr(flags), 0, 0)
	return errnoErr(e)
}
