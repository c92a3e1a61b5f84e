package main

import (
	"os"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/runner"
)

var attachCmd = &command{
	name:  "attach",
	usage: "unionfuse attach [--no-stdin] CONTAINER",
	help: `Attach to a running container: what it writes from now on is printed
here (its stderr on stderr), this stdin reaches its command when it was
created with -i, and attach exits with its status when it stops.`,
	options: optionsOf(attachFlags),
	run:     runAttach,
}

type attachArgs struct {
	containerArgs
	noStdin bool
}

func attachFlags() (*pflag.FlagSet, *attachArgs) {
	a := &attachArgs{}
	fset := newContainerFlags("attach", &a.containerArgs)
	fset.BoolVar(&a.noStdin, "no-stdin", false, "do not attach stdin")
	return fset, a
}

func runAttach(cmd *command, args []string) int {
	fset, a := attachFlags()
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
		var stdin *os.File
		if !a.noStdin {
			stdin = os.Stdin
		}
		code, err := r.Attach(c, stdin, os.Stdout, os.Stderr)
		if err != nil {
			return fail(err)
		}
		return code
	})
}
