package main

import (
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/runner"
)

var killCmd = &command{
	name:    "kill",
	usage:   "unionfuse kill [-s SIGNAL] CONTAINER...",
	help:    `Send a signal (default SIGKILL) to the command of running containers.`,
	options: optionsOf(killFlags),
	run:     runKill,
}

type killArgs struct {
	containerArgs
	signal string
}

func killFlags() (*pflag.FlagSet, *killArgs) {
	a := &killArgs{}
	fset := newContainerFlags("kill", &a.containerArgs)
	fset.StringVarP(&a.signal, "signal", "s", "KILL", "the `SIGNAL` to send (name or number)")
	return fset, a
}

func runKill(cmd *command, args []string) int {
	fset, a := killFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return usageError(cmd, "want at least one CONTAINER")
	}
	sig, err := runner.ParseSignal(a.signal)
	if err != nil {
		return usageError(cmd, "%v", err)
	}
	return a.withRunner(func(r *runner.Runner) int {
		return eachContainer(cmd, r, pos, true, func(c *runner.Container) error {
			if err := r.Kill(c, sig); err != nil {
				return err
			}
			return nil
		})
	})
}
