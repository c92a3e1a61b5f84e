package fs

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// kernelAtLeast reports whether the running kernel's version is at least
// major.minor; false when the release cannot be read.
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var maj, min int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &maj, &min); err != nil {
		return false
	}
	return maj > major || maj == major && min >= minor
}
