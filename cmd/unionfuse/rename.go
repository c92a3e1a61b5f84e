package main

import (
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/runner"
)

var renameCmd = &command{
	name:    "rename",
	usage:   "unionfuse rename CONTAINER NEW_NAME",
	help:    `Give a container a new name (running or not).`,
	options: optionsOf(renameFlags),
	run:     runRename,
}

func renameFlags() (*pflag.FlagSet, *containerArgs) {
	a := &containerArgs{}
	return newContainerFlags("rename", a), a
}

func runRename(cmd *command, args []string) int {
	fset, a := renameFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return usageError(cmd, "want CONTAINER NEW_NAME")
	}
	return a.withRunner(func(r *runner.Runner) int {
		c, err := r.Get(pos[0])
		if err != nil {
			return fail(err)
		}
		if err := r.Rename(c, pos[1]); err != nil {
			return fail(err)
		}
		return exitOK
	})
}
