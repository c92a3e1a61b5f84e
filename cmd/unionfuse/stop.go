package main

import (
	"time"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/runner"
)

var stopCmd = &command{
	name:  "stop",
	usage: "unionfuse stop [-t SECONDS] CONTAINER...",
	help: `Stop running containers: the image's stop signal (SIGTERM by default),
then SIGKILL after the timeout. The command runs as pid 1 of its
namespace, which ignores signals it does not handle, as under docker.`,
	options: optionsOf(stopFlags),
	run:     runStop,
}

var restartCmd = &command{
	name:    "restart",
	usage:   "unionfuse restart [-t SECONDS] CONTAINER...",
	help:    `Stop containers (as 'unionfuse stop') and start them again in the background.`,
	options: optionsOf(stopFlags),
	run:     runRestart,
}

type stopArgs struct {
	containerArgs
	seconds int
}

func stopFlags() (*pflag.FlagSet, *stopArgs) {
	a := &stopArgs{}
	fset := newContainerFlags("stop", &a.containerArgs)
	fset.IntVarP(&a.seconds, "time", "t", 10, "`SECONDS` to wait before killing")
	return fset, a
}

func runStop(cmd *command, args []string) int { return stopContainers(cmd, args, false) }

func runRestart(cmd *command, args []string) int { return stopContainers(cmd, args, true) }

// stopContainers stops the containers named in args, and with restart
// starts them again.
func stopContainers(cmd *command, args []string, restart bool) int {
	fset, a := stopFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return usageError(cmd, "want at least one CONTAINER")
	}
	return a.withRunner(func(r *runner.Runner) int {
		return eachContainer(cmd, r, pos, true, func(c *runner.Container) error {
			if err := r.Stop(c, time.Duration(a.seconds)*time.Second); err != nil {
				return err
			}
			if restart {
				if err := r.StartDetached(c); err != nil {
					return err
				}
			}
			return nil
		})
	})
}
