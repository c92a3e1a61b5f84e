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
	pid := c.State.Pid
	already := fmt.Errorf("Container %s is already paused", c.ShortID())
	err = c.updateState(func(st *State) error {
		switch {
		case st.Status != StatusRunning || st.Pid != pid:
			// The command ended just before it was stopped.
			return fmt.Errorf("container %s %w", c.ShortID(), ErrNotRunning)
		case st.Paused:
			return already // by another pause meanwhile, which stays
		}
		st.Paused = true
		return nil
	})
	if err != nil {
		if err != already {
			thaw()
		}
		return err
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

// unpause continues a paused container's processes and records it.
func (r *Runner) unpause(c *Container) error {
	// Journalled first, as docker's: once continued the command may end,
	// and "die" comes after.
	r.journal(c, "unpause")
	return r.continuePaused(c)
}

// continuePaused continues a paused container's processes and records it
// in its state; the caller has journalled the unpause.
func (r *Runner) continuePaused(c *Container) error {
	if err := thawAll(c); err != nil {
		return fmt.Errorf("cannot unpause container %s: %w", c.ShortID(), err)
	}
	// Once continued, the command may end and its monitor record that
	// (Paused false too) before this does.
	err := c.updateState(func(st *State) error {
		st.Paused = false
		return nil
	})
	if err != nil {
		return fmt.Errorf("unpause container %s: %w", c.ShortID(), err)
	}
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
