package cowcache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// syncTree fsyncs every regular file and directory below dir (syncfs would
// also flush unrelated files of the same filesystem).
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() && !d.IsDir() {
			return nil
		}
		return atomicfile.Sync(p)
	})
}

// removeTree removes dir and everything below it, first making directories
// writable (a layer may hold read-only directories).
func removeTree(dir string) error {
	err := os.RemoveAll(dir)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return nil
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
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
