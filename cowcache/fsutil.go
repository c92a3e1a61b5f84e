package cowcache

import (
	"errors"
	"fmt"
	"os"

	"github.com/unionfuse/unionfuse/internal/dirwalk"
	"golang.org/x/sys/unix"
)

// syncfs syncs the filesystem that holds dir.
func syncfs(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// removeTree removes dir and everything below it, first making directories
// writable (a layer may hold read-only directories). os.RemoveAll works
// through directory descriptors, and so does the chmod here.
func removeTree(dir string) error {
	err := os.RemoveAll(dir)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return nil
	}
	os.Chmod(dir, 0o700)
	dirwalk.Walk(dir, func(e *dirwalk.Entry) error {
		if e.IsDir() {
			unix.Fchmodat(e.Dir, e.Name, 0o700, 0)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// flock locks f: how is unix.LOCK_SH, unix.LOCK_EX or unix.LOCK_UN,
// optionally with unix.LOCK_NB. It retries on EINTR.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}
