package runner

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// joinNetwork, for a container of --network container:ID, finds that
// container running and sets c.netnsPid to its init; it returns its
// directory (whose hosts and resolv.conf c shares). "" for other networks.
func (r *Runner) joinNetwork(c *Container) (string, error) {
	id := c.Config.netContainer()
	if id == "" {
		return "", nil
	}
	t, err := r.Get(id)
	if err != nil || !t.Running() {
		return "", fmt.Errorf("cannot join network namespace of a non running container: %.12s", id)
	}
	c.netnsPid = t.State.Pid
	return t.dir, nil
}

// inNetns runs start (which forks) with this thread in the network
// namespace of pid, so that the child is born there; pid 0 runs it as it
// is. The thread goes back to its namespace after, or, should that fail,
// ends with its goroutine (it stays locked).
func inNetns(pid int, start func() error) error {
	if pid == 0 {
		return start()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("the network namespace of process %d: %w", pid, err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("join the network namespace of process %d: %w", pid, err)
	}
	err = start()
	if netns.Set(orig) == nil {
		runtime.UnlockOSThread()
	}
	return err
}
