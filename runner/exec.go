package runner

import (
	"fmt"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"

	"github.com/moby/sys/user"
)

// ExecOptions describe a command run in a running container.
type ExecOptions struct {
	Args        []string
	Env         []string // K=V added to the container's
	User        string   // "" = the container's user
	Interactive bool
}

// Exec runs a command in the namespaces and root of a running container
// (through nsenter(1), which joins the namespaces before it execs) and
// returns its exit status.
func (r *Runner) Exec(c *Container, o ExecOptions, stdio IO) (int, error) {
	if !c.Running() || c.State.Pid <= 0 {
		return 125, fmt.Errorf("container %s is not running", c.ShortID())
	}
	if len(o.Args) == 0 {
		return 125, fmt.Errorf("exec: no command given")
	}
	pid := strconv.Itoa(c.State.Pid)
	args := []string{"--target", pid, "--mount", "--uts", "--ipc", "--pid", "--root", "--wd"}
	if c.Config.Network == "none" {
		args = append(args, "--net")
	}
	if c.State.Rootless {
		// The caller is root in the container's user namespace already;
		// nsenter's own switch to root would call setgroups(2), which
		// that namespace denies.
		args = append(args, "--user", "--preserve-credentials")
	}
	spec := o.User
	if spec == "" {
		spec = c.Config.User
	}
	if spec != "" {
		// The container's passwd and group, seen through its init.
		rootDir := filepath.Join("/proc", pid, "root")
		u, err := user.GetExecUserPath(spec, &user.ExecUser{}, filepath.Join(rootDir, "etc/passwd"), filepath.Join(rootDir, "etc/group"))
		if err != nil {
			return 125, fmt.Errorf("unable to find user %s: %v", spec, err)
		}
		if u.Uid != 0 || u.Gid != 0 || !c.State.Rootless {
			args = append(args, "--setuid", strconv.Itoa(u.Uid), "--setgid", strconv.Itoa(u.Gid))
		}
	}
	args = append(args, "--")
	args = append(args, o.Args...)
	cmd := exec.Command("nsenter", args...)
	cmd.Env = mergeEnv(c.Config.Env, append(o.Env, "HOSTNAME="+c.Config.Hostname))
	if o.Interactive {
		cmd.Stdin = stdio.Stdin
	}
	cmd.Stdout, cmd.Stderr = stdio.Stdout, stdio.Stderr
	signals := catchSignals()
	defer signal.Stop(signals)
	if err := cmd.Start(); err != nil {
		return 126, fmt.Errorf("exec in %s: %w", c.ShortID(), err)
	}
	stop := forwardSignals(signals, cmd.Process)
	err := cmd.Wait()
	stop()
	return exitStatus(err), nil
}
