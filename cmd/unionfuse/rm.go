package main

import (
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/runner"
)

var rmCmd = &command{
	name:  "rm",
	usage: "unionfuse rm [-f] [-v] CONTAINER...",
	help: `Remove containers and their layers. A running container is refused
unless -f, which kills it first. -v removes the container's anonymous
volumes too (named volumes stay, as docker's).`,
	options: optionsOf(rmFlags),
	run:     runRm,
}

type rmArgs struct {
	containerArgs
	force, volumes bool
}

func rmFlags() (*pflag.FlagSet, *rmArgs) {
	a := &rmArgs{}
	fset := newContainerFlags("rm", &a.containerArgs)
	fset.BoolVarP(&a.force, "force", "f", false, "kill a running container first")
	fset.BoolVarP(&a.volumes, "volumes", "v", false, "remove the container's anonymous volumes")
	return fset, a
}

func runRm(cmd *command, args []string) int {
	fset, a := rmFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return usageError(cmd, "want at least one CONTAINER")
	}
	return a.withRunner(func(r *runner.Runner) int {
		return eachContainer(cmd, r, pos, true, func(c *runner.Container) error {
			if err := r.Remove(c, a.force); err != nil {
				return err
			}
			if a.volumes {
				return r.RemoveVolumes(c)
			}
			return nil
		})
	})
}
