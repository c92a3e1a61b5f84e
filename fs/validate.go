package fs

import (
	"errors"
	"fmt"
	"os"
)

// Validate checks the configuration and the mountpoint before anything is
// opened or changed, and returns one clear error for the first problem.
func (c *Config) Validate(merged string) error {
	if len(c.Lowers) == 0 {
		return errors.New("no lower directories given")
	}
	check := func(what, dir string) error {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("%s %s: %w", what, dir, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s %s is not a directory", what, dir)
		}
		return nil
	}
	for _, l := range c.Lowers {
		if err := check("lowerdir", l); err != nil {
			return err
		}
	}
	if !c.ReadOnly() {
		if c.Work == "" {
			return errors.New("upperdir given without workdir")
		}
		if err := check("upperdir", c.Upper); err != nil {
			return err
		}
		if err := check("workdir", c.Work); err != nil {
			return err
		}
	}
	return check("mountpoint", merged)
}
