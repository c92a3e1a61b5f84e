package runner

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/network"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// Run runs a created or exited container in this process (the monitor):
// mounts its root, starts its command, passes stdio.Signals on to it,
// waits, records the exit status, unmounts, and removes the container when
// it was created with AutoRemove; again as its restart policy says. It
// returns the command's (last) exit status; a command that could not
// start is an *ExitError.
func (r *Runner) Run(c *Container, stdio IO) (int, error) {
	return r.runRestarting(c, stdio, nil)
}

// run is Run with started called once the command runs (nil error) or
// could not start.
func (r *Runner) run(c *Container, stdio IO, started func(error)) (code int, err error) {
	notify := func(err error) {
		if started != nil {
			started(err)
			started = nil
		}
	}
	defer func() { notify(err) }()
	// Signals that arrive before the command runs wait in stdio.Signals
	// and are passed on to it then.
	lock, err := lockMonitor(c)
	if err != nil {
		return ExitUnionfuseFailed, err
	}
	defer lock.Close()
	if err := r.Reload(c); err != nil {
		return ExitUnionfuseFailed, err
	}
	if c.State.Status == StatusRunning {
		return ExitUnionfuseFailed, fmt.Errorf("container %s is already running", c.ShortID())
	}
	defer func() {
		if c.Config.AutoRemove {
			lock.Close()
			if c.State.Status == StatusExited {
				r.recordExit(c.ID, c.State.ExitCode) // for a wait that finds it gone
			}
			if rerr := r.remove(c); rerr != nil && err == nil {
				err = rerr
			} else if rerr == nil {
				r.RemoveVolumes(c) // --rm takes the anonymous volumes too
			}
		}
	}()
	joined, err := r.joinNetwork(c)
	if err != nil {
		return ExitUnionfuseFailed, fmt.Errorf("container %s: %w", c.ShortID(), err)
	}
	if err := writeEtcFiles(c, joined); err != nil {
		return ExitUnionfuseFailed, fmt.Errorf("container %s: %w", c.ShortID(), err)
	}
	pub, err := listenPorts(c.Config.Ports)
	if err != nil {
		return ExitUnionfuseFailed, &ExitError{Code: ExitUnionfuseFailed, Message: fmt.Sprintf("container %s: %v", c.ShortID(), err)}
	}
	defer pub.close()
	if _, err := r.Mount(c); err != nil {
		return ExitUnionfuseFailed, err
	}
	if err := fillVolumes(c, c.Rootfs()); err != nil {
		r.Unmount(c)
		return ExitUnionfuseFailed, fmt.Errorf("container %s: %w", c.ShortID(), err)
	}
	defer func() {
		// A root still busy after the command ended (a process of the
		// container holds it) is detached lazily; that is no reason to
		// report the command's status as unionfuse's failure.
		if uerr := r.Unmount(c); uerr != nil {
			stdio.warn(uerr)
		}
	}()
	var atts []*network.Attachment
	defer func() {
		if atts != nil {
			// network connect and disconnect change the networks.
			if n, err := r.loadContainer(c.ID); err == nil {
				c.Config.Networks = n.Config.Networks
			}
			if derr := detachNetworks(c); derr != nil {
				stdio.warn(derr)
			}
		}
	}()
	logw, err := openLog(c)
	if err != nil {
		return ExitUnionfuseFailed, fmt.Errorf("container %s: log: %w", c.ShortID(), err)
	}
	defer logw.close()
	stdio, flushLog := logw.tee(stdio)
	defer flushLog()
	var cgroupPath string
	proc, err := startProcess(c, stdio, func(pid int) (err error) {
		if cgroupPath, err = startCgroup(c, pid, stdio.warn); err != nil {
			return err
		}
		if atts, err = attachNetworks(c, pid); err != nil {
			return err
		}
		if err = publishInKernel(c, atts, pub.ports); err != nil {
			detachNetworks(c)
			atts = nil
		}
		return err
	})
	if err != nil {
		c.State.CgroupPath = cgroupPath
		removeCgroup(c)
		r.finish(c, exitCodeOf(err), err)
		return exitCodeOf(err), err
	}
	c.State = State{Status: StatusRunning, Pid: proc.cmd.Process.Pid, StartedAt: time.Now().UTC(), Rootless: rootless(), Ports: pub.ports, Networks: atts,
		RestartCount: c.State.RestartCount, CgroupPath: cgroupPath}
	c.State.PidStart, _ = daemon.StartTime(c.State.Pid)
	if err := c.saveState(); err != nil {
		proc.cmd.Process.Kill()
	}
	if err := pub.serve(c.State.Pid); err != nil {
		stdio.warn(fmt.Errorf("container %s: %w", c.ShortID(), err))
	}
	notify(nil)
	r.journal(c, "start")
	stopForwarding := forwardSignals(stdio.Signals, proc.cmd.Process, proc.resize)
	stopWatch := watchFuseServer(c, proc.cmd.Process)
	werr := proc.wait()
	stopWatch()
	stopForwarding()
	endCgroup(c)
	code = exitStatus(werr)
	r.finish(c, code, nil)
	r.journal(c, "die", "exitCode", strconv.Itoa(code))
	return code, nil
}

// finish records that the container's command ended with code.
func (r *Runner) finish(c *Container, code int, err error) {
	c.State.Status = StatusExited
	c.State.Paused = false
	c.State.ExitCode = code
	c.State.Pid = 0
	c.State.Networks = nil
	c.State.CgroupPath = ""
	c.State.FinishedAt = time.Now().UTC()
	if err != nil {
		c.State.Error = err.Error()
	}
	c.saveState()
}

// lockMonitor takes monitor.lock: only one monitor per container. The
// lock is close-on-exec, so it dies with the monitor alone.
func lockMonitor(c *Container) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(c.dir, "monitor.lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	for i := 0; ; i++ {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		// Readers (monitorAlive) hold it shared for a moment.
		if err != unix.EWOULDBLOCK || i == 20 {
			f.Close()
			return nil, fmt.Errorf("container %s is already running", c.ShortID())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// monitorAlive reports whether a monitor holds the container's lock.
func monitorAlive(c *Container) bool {
	f, err := os.OpenFile(filepath.Join(c.dir, "monitor.lock"), os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil {
		return true
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// process is a started container command and what relays its terminal.
type process struct {
	cmd    *exec.Cmd
	master *os.File // the terminal's master side, with TTY
	relay  chan struct{}
	done   func()
	resize func() // gives the terminal the caller's size; nil without one
}

// startProcess starts the container's command with stdio, through a
// pseudo-terminal of the container's with TTY; setup as startInit's.
func startProcess(c *Container, stdio IO, setup func(pid int) error) (*process, error) {
	stdin := stdio.Stdin
	if !c.Config.Interactive {
		stdin = nil
	}
	if !c.Config.TTY {
		cmd, _, err := startInit(c, stdin, stdio.Stdout, stdio.Stderr, nil, setup)
		if err != nil {
			return nil, err
		}
		return &process{cmd: cmd, done: func() {}}, nil
	}
	cmd, master, err := startInit(c, nil, nil, nil, callerTerminalSize(stdin), setup)
	if err != nil {
		return nil, err
	}
	relay, restore, resize := relayTerminal(master, stdin, stdio.Stdout)
	return &process{cmd: cmd, master: master, relay: relay, done: restore, resize: resize}, nil
}

// relayTerminal copies stdin (when not nil) to a terminal's master and the
// master's output to stdout, until the last slave is closed, when relay is
// closed. A stdin that is itself a terminal is put in raw mode (restore
// puts it back) and lends its size to the new terminal, again at each
// call of resize (nil for a stdin that is no terminal).
func relayTerminal(master *os.File, stdin io.Reader, stdout io.Writer) (relay chan struct{}, restore, resize func()) {
	restore = func() {}
	relay = make(chan struct{})
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		pty.InheritSize(f, master)
		if old, err := term.MakeRaw(int(f.Fd())); err == nil {
			restore = func() { term.Restore(int(f.Fd()), old) }
		}
		resize = func() { pty.InheritSize(f, master) }
	}
	if stdin != nil {
		go io.Copy(master, stdin)
	}
	if stdout == nil {
		stdout = io.Discard
	}
	go func() {
		io.Copy(stdout, master) // ends with EIO once the last slave is closed
		close(relay)
	}()
	return relay, restore, resize
}

// wait waits for the command and for its terminal output to drain.
func (p *process) wait() error {
	err := p.cmd.Wait()
	if p.master != nil {
		drainTerminal(p.master, p.relay)
	}
	p.done()
	return err
}

// drainTerminal waits for a relay of relayTerminal to end, but not for a
// background process that keeps the terminal open, and closes master.
func drainTerminal(master *os.File, relay chan struct{}) {
	select {
	case <-relay:
	case <-time.After(2 * time.Second):
	}
	master.Close()
}

// ForwardedSignals returns the signals a user sends `unionfuse run` or
// `exec` that are meant for the container's command. The caller catches
// them (signal.Notify), with SIGWINCH when its stdin is a terminal, and
// hands the channel to Run or Exec as IO.Signals.
func ForwardedSignals() []os.Signal {
	return []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}
}

// forwardSignals passes the signals that arrive on ch on to p until stop
// is called, but SIGWINCH, which calls resize (when not nil) instead: the
// user's terminal resized, so is the container's.
func forwardSignals(ch <-chan os.Signal, p *os.Process, resize func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-ch:
				if sig != syscall.SIGWINCH {
					p.Signal(sig)
				} else if resize != nil {
					resize()
				}
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}

// watchFuseServer kills the container's command when the FUSE server of
// its root dies: its files are gone, and it would otherwise hang around
// failing.
func watchFuseServer(c *Container, p *os.Process) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if !fuseServerAlive(c) {
					p.Signal(syscall.SIGKILL)
					return
				}
			}
		}
	}()
	return func() { close(done) }
}
