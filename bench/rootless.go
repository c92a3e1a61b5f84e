package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// A rootless run (-rootless) measures what a user without root gets. The
// workspace belongs to an unprivileged user, every workload command (find,
// tar, rm, fio) runs as that user on every system, and the FUSE daemons run
// as that user too, mounting through fusermount3: no passthrough (the
// kernel allows it only to CAP_SYS_ADMIN), user.overlay.* attributes. The
// kernel's overlay is still mounted by root, as the reference. The harness
// itself stays root (it drops caches and reads through the mounts, which
// the daemons allow with allow_other).

// rootlessUID and rootlessGID are the user of a rootless run: nobody.
const rootlessUID, rootlessGID = 65534, 65534

// workloadCred is the user the workload commands run as: nil (the
// harness's own user, root) except in a rootless run.
var workloadCred *syscall.Credential

// asWorkloadUser makes cmd run as the workload user.
func asWorkloadUser(cmd *exec.Cmd) {
	if workloadCred == nil {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = workloadCred
}

// asWorkloadUserHere runs fn, which makes files in the harness's own
// process, as the workload user: on a thread of its own whose filesystem
// ids (setfsuid, setfsgid: what permission checks and FUSE requests use)
// are the user's. fn must not hand work to other goroutines.
func asWorkloadUserHere(fn func() error) error {
	if workloadCred == nil {
		return fn()
	}
	runtime.LockOSThread()
	unix.Setfsgid(int(workloadCred.Gid))
	unix.Setfsuid(int(workloadCred.Uid))
	err := fn()
	unix.Setfsuid(0)
	unix.Setfsgid(0)
	if fsuid() == 0 {
		runtime.UnlockOSThread() // else the thread ends with this goroutine
	}
	return err
}

// fsuid returns the calling thread's filesystem user id.
func fsuid() int {
	// setfsuid with an invalid id changes nothing and returns the current.
	old, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0)
	return int(old)
}

// restoreHost undoes what a rootless run changed on the host (see
// allowUnprivilegedFuse); it is called at exit and on interrupt.
var restoreHost = func() {}

// allowUnprivilegedFuse lets an unprivileged user mount FUSE filesystems
// that root can enter: /dev/fuse readable and writable by everyone, and
// user_allow_other in /etc/fuse.conf. What it changes is put back by
// restoreHost.
func allowUnprivilegedFuse() error {
	var undo []func()
	restoreHost = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		undo = nil
	}
	st, err := os.Stat("/dev/fuse")
	if err != nil {
		return fmt.Errorf("rootless run: %w", err)
	}
	if mode := st.Mode().Perm(); mode&0o006 != 0o006 {
		if err := os.Chmod("/dev/fuse", mode|0o666); err != nil {
			return fmt.Errorf("rootless run: %w", err)
		}
		undo = append(undo, func() { os.Chmod("/dev/fuse", mode) })
	}
	const conf = "/etc/fuse.conf"
	old, err := os.ReadFile(conf)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rootless run: %w", err)
	}
	existed := err == nil
	for _, line := range bytes.Split(old, []byte("\n")) {
		if string(bytes.TrimSpace(line)) == "user_allow_other" {
			return nil
		}
	}
	add := append([]byte{}, old...)
	if len(add) > 0 && add[len(add)-1] != '\n' {
		add = append(add, '\n')
	}
	if err := os.WriteFile(conf, append(add, "user_allow_other\n"...), 0o644); err != nil {
		return fmt.Errorf("rootless run: %w", err)
	}
	undo = append(undo, func() {
		if existed {
			os.WriteFile(conf, old, 0o644)
		} else {
			os.Remove(conf)
		}
	})
	return nil
}

// chownTree gives everything under root to the rootless user.
func chownTree(root string) error {
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, rootlessUID, rootlessGID)
	})
}

// rootlessDaemon returns d run as the rootless user: it mounts through
// fusermount3, with allow_other so that the harness (root) can enter.
func rootlessDaemon(d *daemon) *daemon {
	return &daemon{name: d.name, log: d.log, cred: workloadCred, argv: func(u Union) []string {
		argv := d.argv(u)
		argv[len(argv)-2] += ",allow_other"
		return argv
	}}
}
