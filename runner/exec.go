package runner

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/creack/pty"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
	"github.com/unionfuse/unionfuse/internal/daemon"
)

// ExecOptions describe a command run in a running container.
type ExecOptions struct {
	Args        []string
	Env         []string // K=V added to the container's
	User        string   // "" = the container's user
	Interactive bool
	TTY         bool // a pseudo-terminal for the command (docker exec -t)
	// WorkDir is the command's working directory (absolute, in the
	// container); "" = the container's init's.
	WorkDir string
	// Detach starts the command without waiting for it (docker exec -d):
	// its stdio is /dev/null and Exec returns 0 once it started.
	Detach bool
}

// ErrNotRunning is returned (wrapped) by Exec for a container that is
// not running: docker's CLI exits 1 for it.
var ErrNotRunning = errors.New("is not running")

// Exec runs a command in the namespaces and root of a running container
// (through nsenter(1), which joins the namespaces before it execs),
// passes stdio.Signals on to it and returns its exit status.
func (r *Runner) Exec(c *Container, o ExecOptions, stdio IO) (int, error) {
	if !c.Running() || c.State.Pid <= 0 || !c.pidIsInit() {
		return ExitUnionfuseFailed, fmt.Errorf("container %s %w", c.ShortID(), ErrNotRunning)
	}
	if c.Paused() {
		return ExitUnionfuseFailed, fmt.Errorf("Container %s %w, unpause the container before exec", c.ShortID(), ErrPaused)
	}
	if len(o.Args) == 0 {
		return ExitUnionfuseFailed, fmt.Errorf("exec: no command given")
	}
	if err := checkEnv(o.Env); err != nil {
		return 125, err
	}
	pid := strconv.Itoa(c.State.Pid)
	wd, err := execWorkDir(pid, o.WorkDir)
	if err != nil {
		return ExitCannotInvoke, err
	}
	args := []string{"--target", pid, "--mount", "--uts", "--ipc", "--pid", "--root", wd}
	if c.Config.ownNetns() {
		args = append(args, "--net")
	}
	if c.State.Rootless {
		// The caller is root in the container's user namespace already;
		// nsenter's own switch to root would call setgroups(2), which
		// that namespace denies.
		args = append(args, "--user", "--preserve-credentials")
	}
	spec := o.User
	if spec == "" {
		spec = c.Config.User
	}
	if spec != "" {
		// The container's passwd and group, seen through its init, with
		// symbolic links resolved inside the container's root (an
		// absolute link would otherwise lead to the host's files).
		rootDir := filepath.Join("/proc", pid, "root")
		passwd, err1 := securejoin.SecureJoin(rootDir, "/etc/passwd")
		group, err2 := securejoin.SecureJoin(rootDir, "/etc/group")
		if err1 != nil || err2 != nil {
			return ExitUnionfuseFailed, fmt.Errorf("unable to find user %s: %v", spec, errors.Join(err1, err2))
		}
		u, err := user.GetExecUserPath(spec, &user.ExecUser{}, passwd, group)
		if err == nil {
			err = checkIDs(u)
		}
		if err != nil {
			return ExitUnionfuseFailed, fmt.Errorf("unable to find user %s: %v", spec, err)
		}
		if u.Uid != 0 || u.Gid != 0 || !c.State.Rootless {
			args = append(args, "--setuid", strconv.Itoa(u.Uid), "--setgid", strconv.Itoa(u.Gid))
		}
	}
	args = append(args, "--")
	// nsenter runs on the host before it enters: it gets a clean
	// environment, and the container's reaches the command through env(1)
	// inside the container (an image's LD_PRELOAD must not load into a
	// host process).
	env := mergeEnv(c.Config.Env, append(o.Env, "HOSTNAME="+c.Config.Hostname))
	if o.TTY && !hasEnv(env, "TERM") {
		env = append(env, "TERM=xterm")
	}
	args = append(append(append(args, "env", "-i"), env...), o.Args...)
	cmd := exec.Command("nsenter", args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var master, slave *os.File
	if o.TTY {
		// The terminal is the controlling terminal of a new session that
		// nsenter starts in; its child in the container inherits both.
		var err error
		if master, slave, err = openContainerTerminal(c.State.Pid); err != nil {
			return ExitUnionfuseFailed, fmt.Errorf("exec in %s: terminal: %w", c.ShortID(), err)
		}
		defer master.Close()
		if size := callerTerminalSize(stdio.Stdin); o.Interactive && size != nil {
			pty.Setsize(master, size) // before the command asks for it
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	} else if o.Detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		if o.Interactive {
			cmd.Stdin = stdio.Stdin
		}
		cmd.Stdout, cmd.Stderr = stdio.Stdout, stdio.Stderr
	}
	daemon.CloseInheritedOnExec()
	err = cmd.Start()
	if err == nil && o.Detach {
		return 0, cmd.Process.Release() // nsenter waits for the command

	}
	if slave != nil {
		slave.Close() // the relay ends when the command's copies close
	}
	if err != nil {
		return ExitCannotInvoke, fmt.Errorf("exec in %s: %w", c.ShortID(), err)
	}
	var relay chan struct{}
	restore := func() {}
	var resize func()
	if master != nil {
		var in io.Reader
		if o.Interactive {
			in = stdio.Stdin
		}
		relay, restore, resize = relayTerminal(master, in, stdio.Stdout)
	}
	stop := forwardSignals(stdio.Signals, cmd.Process, resize)
	err = cmd.Wait()
	stop()
	if master != nil {
		drainTerminal(master, relay)
		restore()
	}
	return exitStatus(err), nil
}

// execWorkDir returns nsenter's working-directory option: the init's
// (--wd) or dir, which must exist in the container (--wdns, entered after
// the chroot).
func execWorkDir(pid, dir string) (string, error) {
	if dir == "" {
		return "--wd", nil
	}
	p, err := securejoin.SecureJoin(filepath.Join("/proc", pid, "root"), dir)
	if err == nil {
		var fi os.FileInfo
		if fi, err = os.Stat(p); err == nil && !fi.IsDir() {
			err = syscall.ENOTDIR
		}
	}
	if pe, ok := err.(*os.PathError); ok {
		err = pe.Err
	}
	if err != nil {
		return "", &ExitError{Code: ExitCannotInvoke, Message: fmt.Sprintf("chdir to cwd (%q) set in config.json failed: %v", dir, err)}
	}
	return "--wdns=" + dir, nil
}
