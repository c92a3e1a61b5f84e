//go:build !(amd64 || arm64 || riscv64 || ppc64 || ppc64le || s390x)

package fs

import "golang.org/x/sys/unix"

// rawFstatat says whether fstatat copies its path on the stack.
const rawFstatat = false

// fstatatIn is fstatat of name in directory dir (union-relative, "" for
// the root); fstatat_raw.go avoids x/sys's copy of the path where the
// kernel's struct is unix.Stat_t.
func fstatatIn(dirfd int, dir, name string, st *unix.Stat_t, flags int) error {
	return unix.Fstatat(dirfd, join(dir, name), st, flags)
}
