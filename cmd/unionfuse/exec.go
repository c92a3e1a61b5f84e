package main

import (
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/runner"
)

var execCmd = &command{
	name:  "exec",
	usage: "unionfuse exec [-i] [-t] [-e K=V] [-u USER] CONTAINER COMMAND [ARG...]",
	help: `Run a command in a running container: in its namespaces (joined with
nsenter), its root and working directory, with its environment. The exit
status is the command's. With -t the command gets a new pseudo-terminal in
the container's /dev/pts as its controlling terminal (-it for a shell).`,
	options: optionsOf(execFlags),
	run:     runExec,
}

type execArgs struct {
	containerArgs
	interactive bool
	tty         bool
	user        string
	env         []string
}

func execFlags() (*pflag.FlagSet, *execArgs) {
	a := &execArgs{}
	fset := newContainerFlags("exec", &a.containerArgs)
	fset.SetInterspersed(false)
	fset.BoolVarP(&a.interactive, "interactive", "i", false, "keep stdin open")
	fset.BoolVarP(&a.tty, "tty", "t", false, "allocate a pseudo-terminal")
	fset.StringVarP(&a.user, "user", "u", "", "run as `USER` (default: the container's)")
	fset.StringArrayVarP(&a.env, "env", "e", nil, "set `K=V`")
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
	return a.withRunner(func(r *runner.Runner) int {
		c, err := r.Get(pos[0])
		if err != nil {
			return fail(err)
		}
		var env []string
		for _, kv := range a.env {
			env = append(env, expandEnv(kv)...)
		}
		stdio, stop := attachedIO(true)
		defer stop()
		code, err := r.Exec(c, runner.ExecOptions{Args: pos[1:], Env: env, User: a.user, Interactive: a.interactive, TTY: a.tty}, stdio)
		if err != nil {
			fail(err)
		}
		return code
	})
}
