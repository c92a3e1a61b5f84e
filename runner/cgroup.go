package runner

import (
	"errors"
	"fmt"
	"os"

	"github.com/opencontainers/cgroups"
	cgroupfs "github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
)

// A running container's processes are in a cgroup of their own, made by
// its monitor before the init reads its spec (so that everything the
// command starts is in it) and removed when the command has ended: the
// limits of Resources, the counters of Stats, the processes of Pids,
// the OOM kills of State.OOMKilled and the freezer of pause. The cgroup
// library (opencontainers/cgroups, runc's) writes the files, for cgroup
// v1 (one hierarchy per controller) and v2 (the unified hierarchy)
// alike.
//
// As root the cgroup is /unionfuse/<id> below the root of each
// hierarchy, as docker's /docker/<id>. Without root only a cgroup v2
// subtree delegated to the user (systemd's user@.service) can be
// written: the cgroup is made beside the caller's own, as runc's
// rootless containers. Where none can be made, a container that asked
// for limits runs without them after one warning, as podman does.

// cgroupParent is the cgroup below which a root-run container's is made.
const cgroupParent = "/unionfuse"

// errNoDelegation: without root, cgroup v1 cannot be written.
var errNoDelegation = errors.New("cgroup v1 is not delegated to users")

// cgroupPathFor returns the path of the cgroup for container id: absolute
// below the root of the hierarchies, or relative to the parent of the
// caller's own cgroup (v2 without root).
func cgroupPathFor(id string) (string, error) {
	if !rootless() {
		return cgroupParent + "/" + id, nil
	}
	if !cgroups.IsCgroup2UnifiedMode() {
		return "", errNoDelegation
	}
	return "unionfuse-" + id, nil
}

// cgroupManager returns the library's manager of the cgroup at path,
// with the limits res.
func cgroupManager(path string, res Resources) (cgroups.Manager, error) {
	cg := &cgroups.Cgroup{Path: path, Resources: res.cgroupResources()}
	if cgroups.IsCgroup2UnifiedMode() {
		return fs2.NewManager(cg, "")
	}
	return cgroupfs.NewManager(cg, nil)
}

// startCgroup makes the container's cgroup with its limits and moves pid
// (its init, not yet running the command) into it. It returns the
// cgroup's path, "" when there is none: without root and without a
// delegated cgroup (warned about when limits were asked), or as root
// when cgroups cannot be written and no limit was asked.
func startCgroup(c *Container, pid int, warn func(error)) (string, error) {
	res := c.Config.Resources
	path, err := cgroupPathFor(c.ID)
	if err == nil {
		var m cgroups.Manager
		if m, err = cgroupManager(path, res); err == nil {
			if err = m.Apply(pid); err == nil {
				if err = m.Set(res.cgroupResources()); err == nil {
					return path, nil
				}
			}
			m.Destroy()
		}
	}
	switch {
	case rootless():
		if res.Limited() {
			warn(fmt.Errorf("resource limits are not supported and ignored: no cgroup can be created without root here (%v)", err))
		}
		return "", nil
	case res.Limited():
		return "", fmt.Errorf("cgroup of container %s: %w", c.ShortID(), err)
	}
	return "", nil
}

// cgroupOf returns the manager of a container's cgroup, or nil when it
// has none.
func cgroupOf(c *Container) cgroups.Manager {
	if c.State.CgroupPath == "" {
		return nil
	}
	m, err := cgroupManager(c.State.CgroupPath, c.Config.Resources)
	if err != nil {
		return nil
	}
	// Not m.Exists: on v1 it looks at the devices controller, which
	// the container's cgroup does not join.
	for _, p := range m.GetPaths() {
		if _, err := os.Stat(p); err == nil {
			return m
		}
	}
	return nil
}

// endCgroup records whether the kernel's OOM killer killed a process of
// the container and removes its cgroup (its processes are gone).
func endCgroup(c *Container) {
	m := cgroupOf(c)
	if m == nil {
		return
	}
	if n, err := m.OOMKillCount(); err == nil && n > 0 {
		c.State.OOMKilled = true
	}
	m.Destroy()
}

// removeCgroup removes what is left of the cgroup of a container whose
// monitor is gone.
func removeCgroup(c *Container) {
	if m := cgroupOf(c); m != nil {
		m.Destroy()
	}
}

// Update changes the limits of a container: recorded for its next start,
// and applied at once to its cgroup when it runs (docker update).
func (r *Runner) Update(c *Container, u Resources) error {
	res := c.Config.Resources.Update(u)
	if err := res.check(); err != nil {
		return err
	}
	if c.Running() {
		if c.State.CgroupPath == "" {
			return fmt.Errorf("container %s runs without a cgroup: its limits cannot be changed", c.ShortID())
		}
		m, err := cgroupManager(c.State.CgroupPath, res)
		if err != nil {
			return err
		}
		if err := m.Set(res.cgroupResources()); err != nil {
			return fmt.Errorf("update container %s: %w", c.ShortID(), err)
		}
	}
	c.Config.Resources = res
	return c.saveRecord()
}
