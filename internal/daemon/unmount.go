package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotMounted is returned by Unmount when merged is not a mount point.
var ErrNotMounted = errors.New("not mounted")

// Unmount detaches the union at merged: umount2(2) as root, otherwise
// fusermount3 -u. With lazy the mount is detached even while busy
// (MNT_DETACH, fusermount3 -z) and goes away when its last user leaves.
func Unmount(merged string, lazy bool) error {
	if os.Geteuid() == 0 {
		flags := 0
		if lazy {
			flags = unix.MNT_DETACH
		}
		err := unix.Unmount(merged, flags)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINVAL):
			return fmt.Errorf("unmount %s: %w", merged, ErrNotMounted)
		case errors.Is(err, unix.EBUSY):
			return fmt.Errorf("unmount %s: target is busy (files are open; try --lazy)", merged)
		default:
			return fmt.Errorf("unmount %s: %w", merged, err)
		}
	}
	args := []string{"-u", merged}
	if lazy {
		args = []string{"-u", "-z", merged}
	}
	cmd := exec.Command(fusermount(), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(strings.SplitN(out.String(), "\n", 2)[0])
		if strings.Contains(msg, "not found in /etc/mtab") || strings.Contains(msg, "Invalid argument") {
			return fmt.Errorf("unmount %s: %w", merged, ErrNotMounted)
		}
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("unmount %s: %s", merged, msg)
	}
	return nil
}

// CheckFuse reports, with a clear error, when this process cannot use
// /dev/fuse (directly as root, through fusermount3 otherwise).
func CheckFuse() error {
	if err := unix.Access("/dev/fuse", unix.R_OK|unix.W_OK); err != nil {
		return fmt.Errorf("cannot open /dev/fuse: %w (load the fuse module; unprivileged users need read-write access to /dev/fuse)", err)
	}
	return nil
}

// fusermount returns the fusermount3 program, found in PATH or in the
// usual places (a mount helper may run with an empty PATH).
func fusermount() string {
	if p, err := exec.LookPath("fusermount3"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/bin/fusermount3", "/bin/fusermount3"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "fusermount3"
}
