package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"github.com/unionfuse/unionfuse/internal/daemon"
)

// reap brings a container's recorded state up to date: a container
// recorded as running whose monitor is gone (killed) is recorded as
// exited, and its orphaned mount is detached lazily; a transient container
// whose owner is gone is removed (gone is true then). It never touches the
// mount's files, so a dead or hung FUSE server cannot make it hang.
func (r *Runner) reap(c *Container) (gone bool) {
	if ownerGone(c) {
		if c.State.Status == StatusRunning && !monitorAlive(c) {
			c.killInit()
		}
		if !monitorAlive(c) {
			return r.remove(c) == nil // unmounts, which stops its daemon
		}
	}
	if c.State.Status != StatusRunning || monitorAlive(c) {
		return false
	}
	// PDEATHSIG killed the init with its monitor; should it have survived
	// (it is the same process still: same start time), end it.
	c.killInit()
	if mounted(c.Rootfs()) {
		r.Unmount(c)
	}
	detachNetworks(c)
	removeCgroup(c)
	c.State.CgroupPath = ""
	c.State.Status = StatusExited
	c.State.Paused = false
	c.State.ExitCode = 137
	c.State.Pid = 0
	c.State.Networks = nil
	c.State.FinishedAt = time.Now().UTC()
	c.State.Error = "the container's monitor was killed"
	c.saveState()
	return false
}

// initExitWait bounds how long reap waits for a container's init it has
// killed to exit.
const initExitWait = 10 * time.Second

// killInit kills the container's init, if the recorded pid is still it,
// and waits until it has exited, and with it the container's pid and
// mount namespaces: until then its processes, and the copy of the root's
// mount its namespace holds, are still there (a PDEATHSIG or SIGKILL is
// delivered at once, but the namespace's processes end after it).
func (c *Container) killInit() {
	if c.State.Pid <= 0 || !c.pidIsInit() {
		return
	}
	start := c.State.PidStart
	if start == 0 {
		start, _ = daemon.StartTime(c.State.Pid)
	}
	thawIfPaused(c) // a frozen process does not die until thawed
	syscall.Kill(c.State.Pid, syscall.SIGKILL)
	daemon.WaitProcessExit(c.State.Pid, start, initExitWait)
}

// Running reports whether the container's command runs now.
func (c *Container) Running() bool { return c.State.Status == StatusRunning }

// pidIsInit reports whether the recorded pid is still the container's
// init, not a recycled number.
func (c *Container) pidIsInit() bool {
	start, err := daemon.StartTime(c.State.Pid)
	return err == nil && (c.State.PidStart == 0 || start == c.State.PidStart)
}

// Kill sends sig to the container's command. A paused container is
// unpaused after the signal when it is one that ends it (thawsOn).
func (r *Runner) Kill(c *Container, sig syscall.Signal) error {
	if !c.Running() || c.State.Pid <= 0 || !c.pidIsInit() {
		return fmt.Errorf("container %s is not running", c.ShortID())
	}
	holdRestarts(c)
	thaw := c.Paused() && c.thawsOn(sig)
	// Journalled before the signal, as the unpause that follows: SIGKILL
	// ends even a stopped process at once, and its monitor's "die" comes
	// after them in docker's order.
	r.journal(c, "kill", "signal", strconv.Itoa(int(sig)))
	if thaw {
		r.journal(c, "unpause")
	}
	if err := syscall.Kill(c.State.Pid, sig); err != nil {
		return fmt.Errorf("kill container %s: %w", c.ShortID(), err)
	}
	if thaw {
		return r.continuePaused(c)
	}
	return nil
}

// Stop sends the container's stop signal (SIGTERM unless the image says
// otherwise), waits up to timeout for it to exit, then kills it. Stopping
// a container that is not running does nothing.
func (r *Runner) Stop(c *Container, timeout time.Duration) error {
	holdRestarts(c)
	if !c.Running() && monitorAlive(c) {
		// Between two runs of its restart policy: the monitor sees the
		// hold and ends (or, had it restarted just now, stop that run).
		r.waitStopped(c, time.Second)
	}
	if !c.Running() {
		return nil
	}
	defer r.journal(c, "stop")
	sig, err := ParseSignal(c.Config.StopSignal)
	if err != nil {
		sig = syscall.SIGTERM
	}
	if err := r.Kill(c, sig); err != nil {
		return err
	}
	if r.waitStopped(c, timeout) {
		return nil
	}
	r.Kill(c, syscall.SIGKILL)
	if !r.waitStopped(c, 30*time.Second) {
		return fmt.Errorf("container %s did not stop", c.ShortID())
	}
	return nil
}

// waitStopped waits up to timeout until the container's monitor has
// finished (state recorded, root unmounted).
func (r *Runner) waitStopped(c *Container, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if err := r.Reload(c); err != nil {
			return errors.Is(err, ErrNoSuchContainer)
		}
		if !c.Running() && !monitorAlive(c) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Wait blocks until the container is not running and returns its exit
// status.
func (r *Runner) Wait(c *Container) (int, error) {
	for {
		if err := r.Reload(c); err != nil {
			if errors.Is(err, ErrNoSuchContainer) {
				// Removed after exiting (--rm): its monitor left the status.
				if code, ok := r.recordedExit(c.ID); ok {
					return code, nil
				}
				return c.State.ExitCode, nil
			}
			return 0, err
		}
		if !c.Running() && !monitorAlive(c) {
			return c.State.ExitCode, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Remove removes a container: its layer, records and mount point. A
// running container is refused unless force, which kills it first.
func (r *Runner) Remove(c *Container, force bool) error {
	if !c.Running() || force {
		holdRestarts(c)
	}
	if c.Running() {
		if !force && c.Paused() {
			return fmt.Errorf("You cannot remove a paused container %s. Unpause and then stop the container before attempting removal or force remove", c.ShortID())
		}
		if !force {
			return fmt.Errorf("cannot remove container %s: it is running (stop it first, or use -f)", c.ShortID())
		}
		r.Kill(c, syscall.SIGKILL)
		if !r.waitStopped(c, 30*time.Second) {
			return fmt.Errorf("container %s did not stop", c.ShortID())
		}
	}
	if monitorAlive(c) {
		// A monitor between runs (e.g. still unmounting): let it finish.
		r.waitStopped(c, 10*time.Second)
	}
	return r.remove(c)
}

// remove unmounts (if needed) and deletes containers/<id>.
func (r *Runner) remove(c *Container) error {
	if err := r.Unmount(c); err != nil {
		return err
	}
	if err := detachNetworks(c); err != nil {
		return err
	}
	removeCgroup(c)
	if err := r.store.RemoveContainerDir(c.ID); err != nil {
		return fmt.Errorf("remove container %s: %w", c.ShortID(), err)
	}
	releaseOwnership(c.ID)
	r.releaseName(c.Name, c.ID)
	r.journal(c, "destroy")
	return nil
}

// recordExit leaves the exit status of an --rm container, before it is
// removed, in the store's exit file for `unionfuse wait`.
func (r *Runner) recordExit(id string, code int) {
	p := r.store.ContainerExitFile(id)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err == nil {
		atomicfile.WriteFile(p, []byte(strconv.Itoa(code)), 0o600)
	}
}

// recordedExit reads (and removes) what recordExit left.
func (r *Runner) recordedExit(id string) (int, bool) {
	p := r.store.ContainerExitFile(id)
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, false
	}
	os.Remove(p)
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return code, err == nil
}
