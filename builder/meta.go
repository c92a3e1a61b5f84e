package builder

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// defaultShell is the shell of shell-form RUN, CMD and ENTRYPOINT when
// the image sets none (SHELL).
var defaultShell = []string{"/bin/sh", "-c"}

// shellOf returns the image's shell.
func shellOf(cfg *v1.Config) []string {
	if len(cfg.Shell) > 0 {
		return cfg.Shell
	}
	return defaultShell
}

// nop is how Docker's classic builder records a step that changed only
// the config: "/bin/sh -c #(nop)  CMD [...]".
func nop(cfg *v1.Config, comment string) string {
	return strings.Join(shellOf(cfg), " ") + " #(nop)  " + comment
}

// commandLine returns the argv of a CMD, ENTRYPOINT or RUN: the shell
// form goes through the image's shell.
func commandLine(cfg *v1.Config, c instructions.ShellDependantCmdLine) []string {
	if c.PrependShell {
		return append(append([]string(nil), shellOf(cfg)...), strings.Join(c.CmdLine, " "))
	}
	return append([]string(nil), c.CmdLine...)
}

// applyMeta applies an instruction that changes only the image's config
// to cfg (a copy the caller owns) and returns the history's CREATED BY. It
// returns handled false for instructions that are not metadata.
func applyMeta(cfg *v1.Config, cmd instructions.Command) (createdBy string, handled bool, err error) {
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		var kv []string
		for _, e := range c.Env {
			cfg.Env = setEnv(cfg.Env, e.Key, e.Value)
			kv = append(kv, e.Key+"="+e.Value)
		}
		return nop(cfg, "ENV "+strings.Join(kv, " ")), true, nil
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		var kv []string
		for _, l := range c.Labels {
			cfg.Labels[l.Key] = l.Value
			kv = append(kv, l.Key+"="+l.Value)
		}
		return nop(cfg, "LABEL "+strings.Join(kv, " ")), true, nil
	case *instructions.MaintainerCommand:
		return nop(cfg, "MAINTAINER "+c.Maintainer), true, nil
	case *instructions.CmdCommand:
		cfg.Cmd = commandLine(cfg, c.ShellDependantCmdLine)
		return nop(cfg, fmt.Sprintf("CMD %q", cfg.Cmd)), true, nil
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = commandLine(cfg, c.ShellDependantCmdLine)
		if len(c.CmdLine) == 0 {
			cfg.Entrypoint = nil
		}
		// As Docker: a new ENTRYPOINT resets a CMD of the base image.
		cfg.Cmd = nil
		return nop(cfg, fmt.Sprintf("ENTRYPOINT %q", cfg.Entrypoint)), true, nil
	case *instructions.UserCommand:
		cfg.User = c.User
		return nop(cfg, "USER "+c.User), true, nil
	case *instructions.ExposeCommand:
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		var ports []string
		for _, p := range c.Ports {
			for _, one := range strings.Fields(p) {
				if !strings.Contains(one, "/") {
					one += "/tcp"
				}
				cfg.ExposedPorts[one] = struct{}{}
				ports = append(ports, one)
			}
		}
		sort.Strings(ports)
		return nop(cfg, "EXPOSE "+strings.Join(ports, " ")), true, nil
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v == "" {
				return "", true, fmt.Errorf("VOLUME: an empty path")
			}
			cfg.Volumes[v] = struct{}{}
		}
		return nop(cfg, fmt.Sprintf("VOLUME %v", c.Volumes)), true, nil
	case *instructions.StopSignalCommand:
		cfg.StopSignal = c.Signal
		return nop(cfg, "STOPSIGNAL "+c.Signal), true, nil
	case *instructions.ShellCommand:
		cfg.Shell = append([]string(nil), c.Shell...)
		return nop(cfg, fmt.Sprintf("SHELL %q", c.Shell)), true, nil
	case *instructions.HealthCheckCommand:
		h := c.Health
		cfg.Healthcheck = &v1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, Retries: h.Retries}
		return nop(cfg, fmt.Sprintf("HEALTHCHECK %s", healthString(cfg.Healthcheck))), true, nil
	case *instructions.OnbuildCommand:
		return "", true, fmt.Errorf("ONBUILD is not supported by unionfuse build")
	}
	return "", false, nil
}

// healthString prints a healthcheck as the history shows it.
func healthString(h *v1.HealthConfig) string {
	d := func(t time.Duration) string {
		if t == 0 {
			return "0s"
		}
		return t.String()
	}
	return fmt.Sprintf("&{%q %q %q %q %d}", h.Test, d(h.Interval), d(h.Timeout), d(h.StartPeriod), h.Retries)
}

// workdir returns the new working directory for WORKDIR p.
func workdir(cfg *v1.Config, p string) string {
	if !path.IsAbs(p) {
		base := cfg.WorkingDir
		if base == "" {
			base = "/"
		}
		p = path.Join(base, p)
	}
	return path.Clean(p)
}
