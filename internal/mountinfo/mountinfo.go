// Package mountinfo answers questions about this process's mount table
// from /proc/thread-self/mountinfo alone, parsed by
// github.com/moby/sys/mountinfo. It never stats or opens a mount point: the
// mount may be a FUSE mount whose server died (ENOTCONN) or hangs, which is
// exactly when unmount and cleanup code asks. (moby's own Mounted does
// stat the path, so it is not used.)
//
// Paths given are absolute, cleaned and with symbolic links resolved, as
// the kernel writes them in the table.
package mountinfo

import (
	"strings"

	"github.com/moby/sys/mountinfo"
)

// Info describes one mount: mount point, source, filesystem type and
// options (per mount in Options, of the filesystem in VFSOptions).
type Info = mountinfo.Info

// IsMountPoint reports whether path is the mount point of a mount.
func IsMountPoint(path string) (bool, error) {
	m, err := Lookup(path)
	return m != nil, err
}

// Lookup returns the mount at mount point path, the topmost when several
// are stacked there, or nil when path is no mount point.
func Lookup(path string) (*Info, error) {
	ms, err := mountinfo.GetMounts(func(m *Info) (skip, stop bool) {
		return m.Mountpoint != path, false
	})
	if err != nil || len(ms) == 0 {
		return nil, err
	}
	return ms[len(ms)-1], nil
}

// HasDevice reports whether a mount of the filesystem with device number
// major:minor is in the table, wherever it is mounted.
func HasDevice(major, minor int) (bool, error) {
	ms, err := mountinfo.GetMounts(func(m *Info) (skip, stop bool) {
		found := m.Major == major && m.Minor == minor
		return !found, found
	})
	return len(ms) > 0, err
}

// Below returns the mount points strictly below dir, in the order of the
// table: parents before the mounts on top of them.
func Below(dir string) ([]string, error) {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	ms, err := mountinfo.GetMounts(func(m *Info) (skip, stop bool) {
		return m.Mountpoint == dir || !strings.HasPrefix(m.Mountpoint, prefix), false
	})
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Mountpoint
	}
	return out, nil
}

// Containing returns the mount that holds path: the one with the longest
// mount point that is path or above it, the topmost of a stack.
func Containing(path string) (*Info, error) {
	ms, err := mountinfo.GetMounts(mountinfo.ParentsFilter(path))
	if err != nil {
		return nil, err
	}
	var best *Info
	for _, m := range ms {
		if best == nil || len(m.Mountpoint) >= len(best.Mountpoint) {
			best = m
		}
	}
	return best, nil
}
