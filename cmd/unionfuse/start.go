package main

import (
	"errors"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/runner"
)

var startCmd = &command{
	name:  "start",
	usage: "unionfuse start [-a] [-i] CONTAINER...",
	help: `Start stopped containers again, on the layer they had: files written in
an earlier run are still there. Without -a they run in the background
(output in 'unionfuse logs'); with -a the first one runs attached and its
exit status is start's.`,
	options: optionsOf(startFlags),
	run:     runStart,
}

type startArgs struct {
	containerArgs
	attach, interactive bool
}

func startFlags() (*pflag.FlagSet, *startArgs) {
	a := &startArgs{}
	fset := newContainerFlags("start", &a.containerArgs)
	fset.BoolVarP(&a.attach, "attach", "a", false, "run attached: stdout and stderr here, exit status returned")
	fset.BoolVarP(&a.interactive, "interactive", "i", false, "attach stdin too")
	return fset, a
}

func runStart(cmd *command, args []string) int {
	fset, a := startFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return usageError(cmd, "want at least one CONTAINER")
	}
	return a.withRunner(func(r *runner.Runner) int {
		if a.attach {
			if len(pos) != 1 {
				return usageError(cmd, "-a takes one CONTAINER")
			}
			c, err := r.Get(pos[0])
			if err != nil {
				return fail(err)
			}
			stdio, stop := attachedIO(a.interactive)
			defer stop()
			code, err := r.Run(c, stdio)
			if err != nil {
				return failRun(err)
			}
			return code
		}
		return eachContainer(cmd, r, pos, true, func(c *runner.Container) error {
			if c.Paused() {
				return errors.New("cannot start a paused container, try unpause instead")
			}
			if c.Running() {
				return nil // as docker: starting a running container does nothing
			}
			if err := r.StartDetached(c); err != nil {
				return err
			}
			return nil
		})
	})
}
