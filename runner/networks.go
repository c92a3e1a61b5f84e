package runner

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/unionfuse/unionfuse/network"
)

// CreateNetwork defines a user-defined network (network create).
func CreateNetwork(n *network.Config) error {
	if err := userNetworks(); err != nil {
		return err
	}
	return Networks().Create(n)
}

// NetworkUsers returns the ids of the containers attached to n now, of
// every store.
func NetworkUsers(n *network.Config) ([]string, error) {
	if n.Name == network.DefaultName && !hostRoot() {
		return nil, nil // slirp4netns: every container has its own
	}
	return Networks().Bridge(n).InUse()
}

// RemoveNetwork removes network ref (network rm), which no container may
// be attached to.
func RemoveNetwork(ref string) (*network.Config, error) {
	defs := Networks()
	n, err := defs.Get(ref)
	if err != nil {
		return nil, err
	}
	if n.Name == network.DefaultName {
		return nil, fmt.Errorf("%s is a pre-defined network and cannot be removed", n.Name)
	}
	if err := userNetworks(); err != nil {
		return nil, err
	}
	users, err := NetworkUsers(n)
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		return nil, fmt.Errorf("error while removing network: network %s id %s has active endpoints", n.Name, n.ID)
	}
	return n, defs.Remove(n)
}

// PruneNetworks removes every user-defined network no container is
// attached to and returns their names.
func PruneNetworks() ([]string, error) {
	all, err := Networks().List()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, n := range all[1:] {
		if users, err := NetworkUsers(n); err != nil || len(users) > 0 {
			continue
		}
		if _, err := RemoveNetwork(n.Name); err == nil {
			removed = append(removed, n.Name)
		}
	}
	return removed, nil
}

// Connect puts container c on network ref too (network connect): at its
// next start, and now when it runs.
func (r *Runner) Connect(c *Container, ref string, aliases []string, ip string) error {
	n, err := Networks().Get(ref)
	if err != nil {
		return err
	}
	if len(c.Config.Networks) == 0 {
		return fmt.Errorf("container %s has network %s: it cannot be connected to another network", c.Name, c.Config.Network)
	}
	if slices.ContainsFunc(c.Config.Networks, func(e EndpointConfig) bool { return e.Network == n.Name }) {
		return fmt.Errorf("endpoint with name %s already exists in network %s", c.Name, n.Name)
	}
	if ip != "" {
		if a, err := netip.ParseAddr(ip); err != nil || !a.Is4() {
			return fmt.Errorf("invalid --ip %q: not an IPv4 address", ip)
		}
	}
	ep := EndpointConfig{Network: n.Name, Aliases: aliases, IP: ip}
	if _, err := driverFor(c, n.Name); err != nil {
		return err
	}
	if c.Running() {
		att, err := attachEndpoint(c, ep, c.State.Pid, freeInterface(c), network.Owner{Pid: c.State.Pid, Start: c.State.PidStart})
		if err != nil {
			return err
		}
		c.State.Networks = append(c.State.Networks, att)
		if err := c.saveState(); err != nil {
			return err
		}
	}
	c.Config.Networks = append(c.Config.Networks, ep)
	return c.saveRecord()
}

// freeInterface is the first ethN running container c has not.
func freeInterface(c *Container) string {
	for i := 0; ; i++ {
		name := fmt.Sprintf("eth%d", i)
		if !slices.ContainsFunc(c.State.Networks, func(a *network.Attachment) bool { return a.Interface == name }) {
			return name
		}
	}
}

// Disconnect takes container c off network ref (network disconnect).
func (r *Runner) Disconnect(c *Container, ref string) error {
	n, err := Networks().Get(ref)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(c.Config.Networks, func(e EndpointConfig) bool { return e.Network == n.Name })
	if i < 0 {
		return fmt.Errorf("container %s is not connected to network %s", c.Name, n.Name)
	}
	d, err := driverFor(c, n.Name)
	if err != nil {
		return err
	}
	if err := d.Detach(c.ID); err != nil {
		return err
	}
	if c.Running() {
		c.State.Networks = slices.DeleteFunc(c.State.Networks, func(a *network.Attachment) bool { return a.Network == n.Name })
		if err := c.saveState(); err != nil {
			return err
		}
	}
	c.Config.Networks = slices.Delete(c.Config.Networks, i, i+1)
	return c.saveRecord()
}
