package main

import "github.com/unionfuse/unionfuse/runner"

var pauseCmd = &command{
	name:  "pause",
	usage: "unionfuse pause CONTAINER...",
	help: `Stop every process of running containers until 'unionfuse unpause': their
freezer cgroup is frozen, or (without a cgroup, rootless) each process
gets SIGSTOP. ps shows them "Up ... (Paused)"; stop, kill and rm -f
unpause them, exec is refused.`,
	options: containerFlagsHelp("pause"),
	run:     func(cmd *command, args []string) int { return pauseContainers(cmd, args, (*runner.Runner).Pause) },
}

var unpauseCmd = &command{
	name:    "unpause",
	usage:   "unionfuse unpause CONTAINER...",
	help:    `Continue the processes of paused containers.`,
	options: containerFlagsHelp("unpause"),
	run:     func(cmd *command, args []string) int { return pauseContainers(cmd, args, (*runner.Runner).Unpause) },
}

// pauseContainers calls do (Pause or Unpause) for each container named
// in args, printing each name as docker does.
func pauseContainers(cmd *command, args []string, do func(*runner.Runner, *runner.Container) error) int {
	a := &containerArgs{}
	fset := newContainerFlags(cmd.name, a)
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return usageError(cmd, "want at least one CONTAINER")
	}
	return a.withRunner(func(r *runner.Runner) int {
		return eachContainer(cmd, r, pos, true, func(c *runner.Container) error { return do(r, c) })
	})
}
