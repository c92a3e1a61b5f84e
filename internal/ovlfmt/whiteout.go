package ovlfmt

import "golang.org/x/sys/unix"

// IsWhiteout reports whether st is a kernel whiteout: a character device
// with device number 0/0.
func IsWhiteout(st *unix.Stat_t) bool { return IsWhiteoutDev(st.Mode, st.Rdev) }

// IsWhiteoutDev reports whether a node of mode and device number rdev is
// a whiteout (as mknod would make it).
func IsWhiteoutDev(mode uint32, rdev uint64) bool {
	return mode&unix.S_IFMT == unix.S_IFCHR && rdev == 0
}

// MayBeXattrWhiteout reports whether st could be the kernel's alternative
// whiteout, a zero-size regular file: it is one if it carries the
// whiteout attribute.
func MayBeXattrWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == 0
}

// MakeWhiteout makes a whiteout, a character device 0/0, at name relative
// to dirfd. Unprivileged users may make one too (Linux 5.8+).
func MakeWhiteout(dirfd int, name string) error {
	return unix.Mknodat(dirfd, name, unix.S_IFCHR, 0)
}

// MakeXattrWhiteout makes the kernel's alternative whiteout at name
// relative to dirfd: a zero-size file with the whiteout attribute. Its
// directory must then carry opaque = "x" (HasXwhiteouts), unless it is
// opaque, for a listing to hide it.
func (x *Xattrs) MakeXattrWhiteout(dirfd int, name string) error {
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fsetxattr(fd, x.Whiteout, []byte(Yes), 0)
}
