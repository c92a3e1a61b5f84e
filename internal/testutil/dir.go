package testutil

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BuildDir makes items below dir (created if need be) in the kernel's
// overlay format, then sets the access and modification times of dir and
// everything below it to FixedTime. Whiteouts and trusted.* xattrs need
// root (see RequireRoot).
func BuildDir(t testing.TB, dir string, items []Item) {
	t.Helper()
	if err := BuildDirErr(dir, items); err != nil {
		t.Fatalf("build layer %s: %v", dir, err)
	}
}

// BuildDirErr is BuildDir for callers without a testing.TB.
func BuildDirErr(dir string, items []Item) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, it := range items {
		p := filepath.Join(dir, it.Path)
		if it.Optional {
			var st unix.Stat_t
			if unix.Lstat(p, &st) == nil {
				continue
			}
		}
		err := os.MkdirAll(filepath.Dir(p), 0o755)
		if err == nil {
			err = create(dir, p, it)
		}
		if err != nil && it.Optional {
			continue
		}
		if err == nil {
			err = setAttributes(p, it)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", it.Path, err)
		}
	}
	return SetTimesBelow(dir, FixedTime)
}

// create makes the object of it at p, below the layer dir.
func create(dir, p string, it Item) error {
	mode := it.perm()
	switch it.Kind {
	case File:
		return WriteFileAt(p, []byte(it.Data), it.Sparse, mode)
	case Dir:
		if err := unix.Mkdir(p, mode); !errors.Is(err, unix.EEXIST) {
			return err
		}
		return nil
	case Symlink:
		return unix.Symlink(it.Data, p)
	case Hardlink:
		return unix.Link(filepath.Join(dir, it.Data), p)
	case Fifo:
		return unix.Mkfifo(p, mode)
	case Device:
		major, minor, err := it.devNumbers()
		if err != nil {
			return err
		}
		return unix.Mknod(p, unix.S_IFCHR|mode, int(unix.Mkdev(major, minor)))
	case Whiteout:
		return unix.Mknod(p, unix.S_IFCHR|mode, 0)
	case XattrWhiteout:
		if err := WriteFileAt(p, nil, 0, mode); err != nil {
			return err
		}
		return unix.Lsetxattr(p, "trusted.overlay.whiteout", nil, 0)
	}
	return fmt.Errorf("unknown kind %q", it.Kind)
}

// setAttributes gives the object at p the exact mode, the owner and the
// xattrs of it.
func setAttributes(p string, it Item) error {
	if it.Kind != Symlink && it.Kind != Hardlink {
		// Mkdir, Mkfifo, Mknod and Open apply the umask: set the exact mode.
		if err := unix.Chmod(p, it.perm()); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if it.UID != 0 || it.GID != 0 {
		if err := unix.Lchown(p, it.UID, it.GID); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(it.Xattrs)) {
		if err := unix.Lsetxattr(p, k, []byte(it.Xattrs[k]), 0); err != nil {
			return fmt.Errorf("setxattr %s: %w", k, err)
		}
	}
	return nil
}

// WriteFileAt creates p, or truncates it, and writes data at offset off
// (a file with a hole before it when off > 0).
func WriteFileAt(p string, data []byte, off int64, mode uint32) error {
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, mode)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if off > 0 {
		if err := unix.Ftruncate(fd, off+int64(len(data))); err != nil {
			return err
		}
	}
	if len(data) > 0 {
		if _, err := unix.Pwrite(fd, data, off); err != nil {
			return err
		}
	}
	return nil
}

// SetTimesBelow sets the access and modification times of dir and
// everything below it, without following symbolic links, deepest first.
func SetTimesBelow(dir string, when time.Time) error {
	var paths []string
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return err
	}
	ts := unix.NsecToTimespec(when.UnixNano())
	for i := len(paths) - 1; i >= 0; i-- {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}
