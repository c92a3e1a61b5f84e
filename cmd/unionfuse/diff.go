package main

import (
	"fmt"

	"github.com/unionfuse/unionfuse/runner"
)

var diffCmd = &command{
	name:  "diff",
	usage: "unionfuse diff CONTAINER",
	help: `List what a container changed in its image, as docker diff: A for an added
path, C for a changed one, D for a deleted one (a whiteout in the
container's layer).`,
	options: containerFlagsHelp("diff"),
	run:     runDiff,
}

func runDiff(cmd *command, args []string) int {
	a := &containerArgs{}
	pos, code, ok := parseFlags(cmd, newContainerFlags("diff", a), args)
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
		changes, err := r.Changes(c)
		if err != nil {
			return fail(err)
		}
		for _, ch := range changes {
			fmt.Println(ch)
		}
		return exitOK
	})
}
