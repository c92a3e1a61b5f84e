package main

import (
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/runner"
)

var updateCmd = &command{
	name:  "update",
	usage: "unionfuse update [OPTIONS] CONTAINER...",
	help: `Change the resource limits of containers: at once in the cgroup of a
running one, and for every later start. A limit not given stays as it was.
A container run without a cgroup (without root, where no cgroup is
delegated to the user) cannot be changed while it runs.`,
	options: optionsOf(updateFlags),
	run:     runUpdate,
}

// updateArgs are the flags of update.
type updateArgs struct {
	containerArgs
	resourceFlags
}

func updateFlags() (*pflag.FlagSet, *updateArgs) {
	a := &updateArgs{}
	fset := newContainerFlags("update", &a.containerArgs)
	a.resourceFlags.add(fset, true)
	return fset, a
}

func runUpdate(cmd *command, args []string) int {
	fset, a := updateFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return usageError(cmd, "want at least one CONTAINER")
	}
	res, err := a.resources()
	if err != nil {
		return usageError(cmd, "%v", err)
	}
	if !res.Limited() {
		return usageError(cmd, "you must provide one or more flags when using this command")
	}
	return a.withRunner(func(r *runner.Runner) int {
		return eachContainer(cmd, r, pos, true, func(c *runner.Container) error {
			return r.Update(c, res)
		})
	})
}
