package main

import (
	"errors"
	"io"
	"os"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"github.com/unionfuse/unionfuse/runner"
	"golang.org/x/term"
)

var exportCmd = &command{
	name:  "export",
	usage: "unionfuse export [-o FILE] CONTAINER",
	help: `Write a container's root filesystem (its image and its own layer,
merged) as a tarball to FILE or stdout, as docker export does.`,
	options: optionsOf(exportFlags),
	run:     runExport,
}

type exportArgs struct {
	containerArgs
	output string
}

func exportFlags() (*pflag.FlagSet, *exportArgs) {
	a := &exportArgs{}
	fset := newContainerFlags("export", &a.containerArgs)
	fset.StringVarP(&a.output, "output", "o", "", "write to `FILE` instead of stdout")
	return fset, a
}

func runExport(cmd *command, args []string) int {
	fset, a := exportFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(cmd, "want one CONTAINER")
	}
	if a.output == "" && term.IsTerminal(int(os.Stdout.Fd())) {
		return fail(errors.New("refusing to write a tarball to a terminal: use -o FILE or redirect stdout"))
	}
	return a.withRunner(func(r *runner.Runner) int {
		c, err := r.Get(pos[0])
		if err != nil {
			return fail(err)
		}
		export := func(w io.Writer) error { return r.Export(c, w) }
		if a.output == "" {
			err = export(os.Stdout)
		} else {
			// No half-written file: written beside the target and renamed;
			// as docker, no device, FIFO or link replaced by a file.
			err = atomicfile.WriteOutput(a.output, 0o600, export)
		}
		if err != nil {
			return fail(err)
		}
		return exitOK
	})
}
