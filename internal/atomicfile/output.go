package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// WriteOutput is Write for the file a user names as a command's output
// (save -o, export -o), with docker's CLI's rule (moby/sys/atomicwriter):
// path must be missing or a regular file. Renaming over a device node, a
// FIFO, a socket or a symbolic link would replace it with a regular file
// (`-o /dev/full` would replace the host's /dev/full), so anything else is
// refused (see CheckOutput) before a byte is written, and again once
// everything is written, right before the rename.
func WriteOutput(path string, perm os.FileMode, write func(io.Writer) error) error {
	if err := CheckOutput(path); err != nil {
		return err
	}
	return Write(path, perm, func(w io.Writer) error {
		if err := write(w); err != nil {
			return err
		}
		return CheckOutput(path)
	})
}

// CheckOutput reports why path cannot be an output file: its directory
// does not exist, or path exists and is not a regular file. The messages
// are docker's.
func CheckOutput(path string) error {
	if path == "" {
		return errors.New("file name is empty")
	}
	if dir := filepath.Dir(path); dir != "." && dir != ".." {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("invalid output path: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("invalid output path: %w", &fs.PathError{Op: "stat", Path: dir, Err: syscall.ENOTDIR})
		}
	}
	// Lstat, as rename(2) does not follow a symbolic link either.
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("output path: %w", err)
	}
	if what := nonRegular(fi.Mode()); what != "" {
		return fmt.Errorf("%s: cannot write to %s", path, what)
	}
	return nil
}

// nonRegular names what a file of mode m is, when not a regular file.
func nonRegular(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return ""
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link directly"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device file"
	case m&fs.ModeDevice != 0:
		return "a block device file"
	}
	return fmt.Sprintf("a file of mode %s", m)
}
