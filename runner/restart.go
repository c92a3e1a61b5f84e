package runner

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// RestartPolicy is docker's --restart: what the monitor does when the
// command exits. Name is "no" (or ""), "on-failure" (restart after a
// non-zero exit, at most MaximumRetryCount times when it is not 0),
// "always" or "unless-stopped" (restart after any exit; a container
// stopped by hand stays stopped, and without a daemon to restart the two
// are the same).
type RestartPolicy struct {
	Name              string
	MaximumRetryCount int `json:",omitempty"`
}

// ParseRestartPolicy parses no|on-failure[:N]|always|unless-stopped.
func ParseRestartPolicy(s string) (RestartPolicy, error) {
	name, count, hasCount := strings.Cut(s, ":")
	p := RestartPolicy{Name: name}
	switch name {
	case "", "no", "always", "unless-stopped":
		if hasCount {
			return p, fmt.Errorf("invalid restart policy %q: maximum retry count can only be used with 'on-failure'", s)
		}
	case "on-failure":
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil || n < 0 {
				return p, fmt.Errorf("invalid restart policy %q: maximum retry count must be a number >= 0", s)
			}
			p.MaximumRetryCount = n
		}
	default:
		return p, fmt.Errorf("invalid restart policy %q: want no, on-failure[:N], always or unless-stopped", s)
	}
	if p.Name == "" {
		p.Name = "no"
	}
	return p, nil
}

// IsZero reports a policy that never restarts.
func (p RestartPolicy) IsZero() bool { return p.Name == "" || p.Name == "no" }

// restarts reports whether a command that exited with code after
// count restarts is restarted.
func (p RestartPolicy) restarts(code, count int) bool {
	switch p.Name {
	case "always", "unless-stopped":
		return true
	case "on-failure":
		return code != 0 && (p.MaximumRetryCount == 0 || count < p.MaximumRetryCount)
	}
	return false
}

// applyLifecycle sets the labels and stop signal of o (and refuses
// --restart with --rm, as docker).
func applyLifecycle(cfg *Config, img v1.Config, o Options) error {
	if len(img.Labels)+len(o.Labels) > 0 {
		cfg.Labels = maps.Clone(img.Labels)
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		maps.Copy(cfg.Labels, o.Labels)
	}
	if o.StopSignal != "" {
		if _, err := ParseSignal(o.StopSignal); err != nil {
			return err
		}
		cfg.StopSignal = o.StopSignal
	}
	if !o.Restart.IsZero() && o.AutoRemove {
		return errors.New("conflicting options: cannot specify both --restart and --rm")
	}
	return nil
}

// noRestartFile is present in a container's directory while it was
// stopped, killed or removed by hand: its monitor must not restart it.
const noRestartFile = "norestart"

// holdRestarts tells c's monitor not to restart it.
func holdRestarts(c *Container) {
	os.WriteFile(filepath.Join(c.dir, noRestartFile), nil, 0o600)
}

// allowRestarts undoes holdRestarts (a start by hand).
func allowRestarts(c *Container) { os.Remove(filepath.Join(c.dir, noRestartFile)) }

// restartsHeld reports whether holdRestarts was called.
func restartsHeld(c *Container) bool {
	_, err := os.Stat(filepath.Join(c.dir, noRestartFile))
	return err == nil
}

// runRestarting is run, again as c's restart policy says after each exit
// (with docker's back-off: 100 ms, doubled each time, at most a minute),
// counting the restarts in State.RestartCount.
func (r *Runner) runRestarting(c *Container, stdio IO, started func(error)) (int, error) {
	count := 0
	delay := 100 * time.Millisecond
	for {
		code, err := r.run(c, stdio, started)
		started = nil
		if err != nil || c.Config.AutoRemove || !c.Config.Restart.restarts(code, count) || restartsHeld(c) {
			return code, err
		}
		time.Sleep(delay)
		delay = min(2*delay, time.Minute)
		if restartsHeld(c) || r.Reload(c) != nil {
			return code, nil
		}
		count++
		c.State.RestartCount = count
		c.saveState()
		r.journal(c, "restart")
	}
}
