package runner

import (
	"fmt"
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
