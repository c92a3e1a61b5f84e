package main

import (
	"errors"
	"os"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/runner"
)

var logsCmd = &command{
	name:  "logs",
	usage: "unionfuse logs [-f] CONTAINER",
	help: `Print what a detached container wrote to stdout and stderr (in the order
written; both go to one log). With -f, keep printing until it stops.`,
	options: optionsOf(logsFlags),
	run:     runLogs,
}

type logsArgs struct {
	containerArgs
	follow bool
}

func logsFlags() (*pflag.FlagSet, *logsArgs) {
	a := &logsArgs{}
	fset := newContainerFlags("logs", &a.containerArgs)
	fset.BoolVarP(&a.follow, "follow", "f", false, "follow the log until the container stops")
	return fset, a
}

func runLogs(cmd *command, args []string) int {
	fset, a := logsFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(cmd, "want one CONTAINER")
	}
	return a.withRunner(func(r *runner.Runner) int {
		c, err := r.Get(pos[0])
		if err != nil {
			return fail(err)
		}
		if err := r.Logs(c, os.Stdout, a.follow); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(err)
		}
		return exitOK
	})
}
