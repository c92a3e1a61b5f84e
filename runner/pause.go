package runner

import (
	"errors"
	"fmt"
	"syscall"
)

// A paused container (docker pause) is running, its processes stopped
// (freeze.go) until it is unpaused: State.Status stays "running" and
// State.Paused is true, so that everything that asks whether its command
// runs (stop, kill, rm -f, wait, the monitor's reaping) still sees it
// run; Status() is what docker shows, "paused".

// StatusPaused is Status() of a paused container. It is never recorded in
// State.Status.
const StatusPaused Status = "paused"

// ErrPaused is returned (wrapped) by Exec for a paused container:
// docker's CLI exits 1 for it.
var ErrPaused = errors.New("is paused")

// Paused reports whether the container runs paused.
func (c *Container) Paused() bool { return c.Running() && c.State.Paused }

// Status is the container's status as docker names it: created,
// running, paused or exited.
func (c *Container) Status() Status {
	if c.Paused() {
		return StatusPaused
	}
	return c.State.Status
}

// Pause stops every process of a running container until Unpause (docker
// pause), and records it.
func (r *Runner) Pause(c *Container) error {
	if !c.Running() || c.State.Pid <= 0 || !c.pidIsInit() {
		return fmt.Errorf("container %s %w", c.ShortID(), ErrNotRunning)
	}
	if c.Paused() {
		return fmt.Errorf("Container %s is already paused", c.ShortID())
	}
	thaw, err := freeze(c)
	if err != nil {
		return fmt.Errorf("cannot pause container %s: %w", c.ShortID(), err)
	}
	// The command may have ended just before it was stopped: its monitor
	// has recorded that, which must not be written over.
	if err := r.Reload(c); err != nil || !c.Running() {
		thaw()
		return fmt.Errorf("container %s %w", c.ShortID(), ErrNotRunning)
	}
	c.State.Paused = true
	if err := c.saveState(); err != nil {
		thaw()
		return fmt.Errorf("pause container %s: %w", c.ShortID(), err)
	}
	r.journal(c, "pause")
	return nil
}

// Unpause continues the processes of a paused container (docker
// unpause).
func (r *Runner) Unpause(c *Container) error {
	if !c.Paused() {
		return fmt.Errorf("Container %s is not paused", c.ShortID())
	}
	return r.unpause(c)
}

// unpause continues a paused container's processes and records it:
// first, for once they run, the command may end and its monitor record
// that.
func (r *Runner) unpause(c *Container) error {
	c.State.Paused = false
	if err := c.saveState(); err != nil {
		return fmt.Errorf("unpause container %s: %w", c.ShortID(), err)
	}
	if err := thawAll(c); err != nil {
		c.State.Paused = true
		c.saveState()
		return fmt.Errorf("cannot unpause container %s: %w", c.ShortID(), err)
	}
	r.journal(c, "unpause")
	return nil
}

// thawsOn reports whether sending sig to a paused container unpauses it,
// as docker's kill: SIGKILL and the container's stop signal do (any
// signal when it has none of its own), so that stop, kill and rm -f end
// a paused container; another signal waits for unpause.
func (c *Container) thawsOn(sig syscall.Signal) bool {
	if sig == syscall.SIGKILL || c.Config.StopSignal == "" {
		return true
	}
	stop, err := ParseSignal(c.Config.StopSignal)
	return err == nil && stop == sig
}

// thawIfPaused continues a paused container whose monitor is gone, before
// it is killed: SIGKILL waits for a frozen cgroup v1 to thaw, and a frozen
// cgroup cannot be removed.
func thawIfPaused(c *Container) {
	if c.State.Paused {
		thawAll(c)
	}
}
