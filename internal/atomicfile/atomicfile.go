// Package atomicfile writes files so that a reader, and the next process
// after a crash, sees the old content or the new, never a part: the data
// goes to a temporary file in the target's directory, which is fsynced,
// renamed over the target, and the directory fsynced. (Replace skips the
// fsyncs, for files that mean nothing after a crash.)
//
// Temporary files are named TempPrefix + the target's name + a random
// suffix, so that a cleanup can recognise what an interrupted write left
// ([IsTemp]).
//
// Not github.com/moby/sys/atomicwriter, whose Close renames whatever was
// written (a stream that fails halfway cannot be abandoned), nor
// github.com/google/renameio/v2, whose temporary names carry no marker;
// neither syncs the directory after the rename.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// TempPrefix starts the name of every temporary file of this package.
const TempPrefix = ".tmp-"

// IsTemp reports whether the file name (a base name) is a temporary file
// of this package, left behind if the writer was interrupted.
func IsTemp(name string) bool { return strings.HasPrefix(name, TempPrefix) }

// WriteFile writes data to path with permissions perm (the umask does
// not apply), atomically.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write writes what write produces to path with permissions perm (the
// umask does not apply), atomically. When write fails, path is left as it
// was and write's error is returned as it is; other errors name path.
func Write(path string, perm os.FileMode, write func(io.Writer) error) error {
	return replace(path, perm, write, true)
}

// Replace writes data to path atomically for readers, but not durably:
// nothing is fsynced, so after a crash path may hold the old content or
// none. It is for files that describe running processes (a pid file),
// which mean nothing after a crash, where the two fsyncs of WriteFile
// would cost a millisecond or more on the way to being ready.
func Replace(path string, data []byte, perm os.FileMode) error {
	return replace(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, false)
}

// replace is Write, with the fsyncs of the data and of the directory only
// when durable.
func replace(path string, perm os.FileMode, write func(io.Writer) error, durable bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, TempPrefix+filepath.Base(path)+"-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if durable {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("write %s: sync: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	committed = true
	if !durable {
		return nil
	}
	return Sync(dir)
}

// Sync fsyncs the file or directory at path: for a directory, it makes
// renames and creations in it durable. What cannot be synced (EINVAL: a
// filesystem without fsync for directories) counts as synced.
func Sync(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}
