package fs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/unionfuse/unionfuse/internal/mountinfo"
	"github.com/unionfuse/unionfuse/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// Validate checks the layers and the mountpoint before anything is opened
// or mounted, and returns one error, on one line, naming what is wrong and
// the path: no lowers; a missing or non-directory lower, upper, work or
// mountpoint; upper without work; upper or work inside a lower, inside
// merged, or overlapping each other; a lower inside merged (the server
// would deadlock looking up its own mount) or inside upper or work; work on
// another filesystem than upper; an upper filesystem without the xattrs
// the overlay needs; a mountpoint that is already a mount point.
//
// Paths are compared absolute, with symlinks resolved. Merged inside (or
// equal to) a lower is allowed: the layers are opened before the mount
// covers them. Validate writes nothing but a short-lived probe file in work.
//
// Validate also completes the configuration in one respect: when trusted.*
// attributes cannot be set on the upper filesystem (not root, or root in a
// user namespace), it switches to user.overlay.* (UserXattr, the kernel's
// -o userxattr) and says so through Logger.
func (c *Config) Validate(merged string) error {
	if len(c.Lowers) == 0 {
		return errors.New("no lower layer given")
	}
	if c.Upper == "" && c.Work != "" {
		return fmt.Errorf("work %s given without an upper layer", c.Work)
	}
	if c.Upper != "" && c.Work == "" {
		return fmt.Errorf("upper %s given without a work directory", c.Upper)
	}
	if err := c.checkMetacopy(); err != nil {
		return err
	}
	if err := c.validateWriteback(); err != nil {
		return err
	}
	var lowers []string
	for _, l := range append(append([]string(nil), c.Lowers...), c.DataLowers...) {
		p, err := resolveDir("lower", l)
		if err != nil {
			return err
		}
		lowers = append(lowers, p)
	}
	mnt, err := resolveDir("mountpoint", merged)
	if err != nil {
		return err
	}
	for _, l := range lowers {
		if strictlyInside(l, mnt) {
			return fmt.Errorf("lower %s is inside the mountpoint %s (the filesystem would deadlock on itself)", l, mnt)
		}
	}
	if !c.ReadOnly() {
		if err := c.validateUpper(lowers, mnt); err != nil {
			return err
		}
	}
	mounted, err := mountinfo.IsMountPoint(mnt)
	if err != nil {
		return fmt.Errorf("read mount table: %w", err)
	}
	if mounted {
		return fmt.Errorf("mountpoint %s is already a mount point", mnt)
	}
	if !c.ReadOnly() {
		if err := c.probeXattr(); err != nil {
			return err
		}
	}
	return c.checkMetacopyXattr()
}

// validateUpper checks upper and work against each other, the lowers and
// the mountpoint.
func (c *Config) validateUpper(lowers []string, mnt string) error {
	upper, err := resolveDir("upper", c.Upper)
	if err != nil {
		return err
	}
	work, err := resolveDir("work", c.Work)
	if err != nil {
		return err
	}
	switch {
	case upper == work:
		return fmt.Errorf("upper and work are the same directory %s", upper)
	case within(work, upper):
		return fmt.Errorf("work %s is inside upper %s", work, upper)
	case within(upper, work):
		return fmt.Errorf("upper %s is inside work %s", upper, work)
	}
	for _, d := range []struct{ name, path string }{{"upper", upper}, {"work", work}} {
		for _, l := range lowers {
			if within(d.path, l) {
				return fmt.Errorf("%s %s is inside lower %s", d.name, d.path, l)
			}
			if within(l, d.path) {
				return fmt.Errorf("lower %s is inside %s %s", l, d.name, d.path)
			}
		}
		if within(d.path, mnt) {
			return fmt.Errorf("%s %s is inside the mountpoint %s", d.name, d.path, mnt)
		}
	}
	var su, sw unix.Stat_t
	if err := unix.Stat(upper, &su); err != nil {
		return fmt.Errorf("upper %s: %w", upper, err)
	}
	if err := unix.Stat(work, &sw); err != nil {
		return fmt.Errorf("work %s: %w", work, err)
	}
	if su.Dev != sw.Dev {
		return fmt.Errorf("work %s is on a different filesystem than upper %s", work, upper)
	}
	return nil
}

// probeXattr sets and removes the overlay's probe attribute on a temporary
// file in work (which is on the upper's filesystem).
func (c *Config) probeXattr() error {
	f, err := os.CreateTemp(c.Work, ".unionfuse-probe-")
	if err != nil {
		return fmt.Errorf("work %s: cannot create files: %w", c.Work, unwrapPath(err))
	}
	defer os.Remove(f.Name())
	defer f.Close()
	x := ovlfmt.For(c.UserXattr)
	if c.UserXattr {
		err = x.SetProbe(int(f.Fd()))
	} else {
		var found *ovlfmt.Xattrs
		if found, err = ovlfmt.ProbeNamespace(int(f.Fd())); found == ovlfmt.User {
			c.UserXattr = true
			if c.Logger != nil {
				c.Logger.Printf("trusted.* extended attributes cannot be set on %s: using %s* (userxattr)", c.Upper, ovlfmt.UserPrefix)
			}
			return nil
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOTSUP):
		return fmt.Errorf("upper %s: its filesystem does not support %s.* extended attributes, needed for whiteouts and opaque directories", c.Upper, x.Namespace)
	case errors.Is(err, unix.EPERM) && !c.UserXattr:
		return fmt.Errorf("upper %s: setting trusted.* extended attributes is not permitted (not root? use userxattr)", c.Upper)
	default:
		return fmt.Errorf("upper %s: cannot set extended attribute %s: %w", c.Upper, x.Probe, err)
	}
}

// resolveDir returns path absolute and with symlinks resolved, or an error
// naming what (lower, upper, ...) when it is missing or not a directory.
func resolveDir(what, path string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("%s: empty path", what)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", what, path, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", what, abs, unwrapPath(err))
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", what, abs, unwrapPath(err))
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s %s: not a directory", what, abs)
	}
	return real, nil
}

// unwrapPath drops the operation and path of an *os.PathError, which the
// caller's message already names, keeping the cause ("no such file or
// directory").
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// within reports whether p is dir or below it; both are clean and absolute.
func within(p, dir string) bool {
	return p == dir || strictlyInside(p, dir)
}

// strictlyInside reports whether p is below dir (and not dir itself).
func strictlyInside(p, dir string) bool {
	if dir == "/" {
		return p != "/"
	}
	return strings.HasPrefix(p, dir+"/")
}
