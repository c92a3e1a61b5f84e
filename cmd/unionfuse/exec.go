package main

import (
	"errors"
	"fmt"
	"path"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/runner"
)

var execCmd = &command{
	name:  "exec",
	usage: "unionfuse exec [-d] [-i] [-t] [-e K=V] [--env-file F] [-u USER] [-w DIR] CONTAINER COMMAND [ARG...]",
	help: `Run a command in a running container: in its namespaces (joined with
nsenter), its root and working directory, with its environment. The exit
status is the command's. With -t the command gets a new pseudo-terminal in
the container's /dev/pts as its controlling terminal (-it for a shell).
With -d the command runs in the background and exec returns at once.
Exec in a container that is not running, or paused, fails with status 1,
as docker.`,
	options: optionsOf(execFlags),
	run:     runExec,
}

type execArgs struct {
	containerArgs
	interactive, tty, detach bool
	user, workdir            string
	env, envFiles            []string
}

func execFlags() (*pflag.FlagSet, *execArgs) {
	a := &execArgs{}
	fset := newContainerFlags("exec", &a.containerArgs)
	fset.SetInterspersed(false)
	fset.BoolVarP(&a.interactive, "interactive", "i", false, "keep stdin open")
	fset.BoolVarP(&a.tty, "tty", "t", false, "allocate a pseudo-terminal")
	fset.StringVarP(&a.user, "user", "u", "", "run as `USER` (default: the container's)")
	fset.BoolVarP(&a.detach, "detach", "d", false, "run the command in the background")
	fset.StringVarP(&a.workdir, "workdir", "w", "", "the command's working `DIR` (absolute, in the container)")
	fset.StringArrayVarP(&a.env, "env", "e", nil, "set `K=V`")
	fset.StringArrayVar(&a.envFiles, "env-file", nil, "read K=V lines from `FILE`")
	return fset, a
}

func runExec(cmd *command, args []string) int {
	fset, a := execFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) < 2 {
		return usageError(cmd, "want CONTAINER COMMAND [ARG...]")
	}
	if a.workdir != "" && !path.IsAbs(a.workdir) {
		return fail(fmt.Errorf("the working directory %q is invalid, it needs to be an absolute path", a.workdir))
	}
	var env []string
	for _, f := range a.envFiles {
		kvs, err := readEnvFile(f)
		if err != nil {
			return fail(err)
		}
		env = append(env, kvs...)
	}
	for _, kv := range a.env {
		env = append(env, expandEnv(kv)...)
	}
	return a.withRunner(func(r *runner.Runner) int {
		c, err := r.Get(pos[0])
		if err != nil {
			return fail(err)
		}
		stdio, stop := attachedIO(true)
		defer stop()
		o := runner.ExecOptions{Args: pos[1:], Env: env, User: a.user, WorkDir: a.workdir,
			Interactive: a.interactive, TTY: a.tty, Detach: a.detach}
		code, err := r.Exec(c, o, stdio)
		if errors.Is(err, runner.ErrNotRunning) || errors.Is(err, runner.ErrPaused) {
			return fail(err) // docker's CLI: 1
		}
		if err != nil {
			fail(err)
		}
		return code
	})
}
