package runner

import (
	"fmt"
	"strings"
)

// Rename gives c a new name, as docker rename: a free one, valid as
// create's (a leading "/" is dropped).
func (r *Runner) Rename(c *Container, name string) error {
	name = strings.TrimPrefix(name, "/")
	if name == c.Name {
		return fmt.Errorf("renaming a container with the same name as its current name")
	}
	if !nameRE().MatchString(name) || len(name) > maxNameLen {
		return fmt.Errorf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	all, err := r.List()
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.Name == name {
			return fmt.Errorf("the container name %q is already in use by container %s: remove it or choose another name", name, o.ShortID())
		}
	}
	if err := r.reserveName(name, c.ID); err != nil {
		return err
	}
	old := c.Name
	c.Name = name
	if err := c.saveRecord(); err != nil {
		c.Name = old
		r.releaseName(name, c.ID)
		return err
	}
	r.releaseName(old, c.ID)
	r.journal(c, "rename", "oldName", "/"+old)
	return nil
}
