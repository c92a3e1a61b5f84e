package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The mount workload's third row: a mount as a user's shell sees it. The
// command is run the way a user types it (fuse-overlayfs and unionfuse
// without -f, so they put their daemon in the background and return once
// the union is up; mount(8) for the kernel), and the time runs from its
// start until a stat through the union succeeds after it returned: what
// `cmd && ls merged` costs. The daemons the harness runs in the foreground
// (the other rows) skip the daemonizing step.

// shellMounter is a system that can also be mounted as from a shell.
type shellMounter interface {
	// MountFromShell mounts u with the command a user would type and
	// returns once the command has exited and a stat of u.Ready through
	// the union succeeded. The caller must call Unmount on the result.
	MountFromShell(u Union) (*Mount, error)
}

// MountFromShell implements shellMounter: mount(8), then a stat.
func (k kernel) MountFromShell(u Union) (*Mount, error) {
	opts := "lowerdir=" + strings.Join(u.Lowers, ":") + ",upperdir=" + u.Upper + ",workdir=" + u.Work
	if k.metacopy {
		opts += ",metacopy=on,redirect_dir=on"
	}
	return fromShell(k.Name(), u, []string{"mount", "-t", "overlay", "overlay", "-o", opts, u.Merged}, nil, nil)
}

// MountFromShell implements shellMounter: the daemon's command line
// without -f, as the daemon's user.
func (d *daemon) MountFromShell(u Union) (*Mount, error) {
	argv := slices.DeleteFunc(d.argv(u), func(a string) bool { return a == "-f" })
	return fromShell(d.name, u, argv, d.cred, d)
}

// fromShell runs argv (as cred when set) to its exit, then stats u.Ready
// through the union once: the union must be up when the command returns.
// The daemon left in the background is not this process's child; it
// exits when its union is unmounted, which Unmount waits for (by the
// mount table) as the daemon's own unmount would.
func fromShell(name string, u Union, argv []string, cred *syscall.Credential, d *daemon) (*Mount, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if d != nil && d.log != nil {
		cmd.Stdout, cmd.Stderr = d.log, d.log
		fmt.Fprintf(d.log, "# %s %s (as from a shell): %s\n", time.Now().Format(time.RFC3339), u.Tag, strings.Join(argv, " "))
	}
	start := time.Now()
	err := cmd.Run()
	m := &Mount{Dir: u.Merged}
	m.unmount = func() error { return unmountDir(u.Merged) }
	remember(m)
	if err != nil {
		m.Unmount()
		return nil, fmt.Errorf("%s from a shell: %s: %w", name, strings.Join(argv, " "), err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(u.Merged, u.Ready), &st); err != nil {
		m.Unmount()
		return nil, fmt.Errorf("%s from a shell: the command returned before the union was up: stat %s: %w", name, u.Ready, err)
	}
	m.Elapsed = time.Since(start)
	return m, nil
}
