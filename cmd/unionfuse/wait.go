package main

import (
	"fmt"

	"github.com/unionfuse/unionfuse/runner"
)

var waitCmd = &command{
	name:    "wait",
	usage:   "unionfuse wait CONTAINER...",
	help:    `Block until containers stop, then print their exit statuses, one per line.`,
	options: containerFlagsHelp("wait"),
	run:     runWait,
}

func runWait(cmd *command, args []string) int {
	a := &containerArgs{}
	fset := newContainerFlags("wait", a)
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return usageError(cmd, "want at least one CONTAINER")
	}
	return a.withRunner(func(r *runner.Runner) int {
		return eachContainer(cmd, r, pos, false, func(c *runner.Container) error {
			code, err := r.Wait(c)
			if err != nil {
				return err
			}
			fmt.Println(code)
			return nil
		})
	})
}
