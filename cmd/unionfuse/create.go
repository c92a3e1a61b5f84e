package main

import (
	"fmt"
	"os"

	"github.com/unionfuse/unionfuse/runner"
)

var createCmd = &command{
	name:  "create",
	usage: "unionfuse create [OPTIONS] IMAGE [COMMAND [ARG...]]",
	help: `Create a container as run does, without starting it, and print its id;
'unionfuse start' starts it (-a attached). Takes run's options.`,
	options: optionsOf(runFlags),
	run:     runCreate,
}

func runCreate(cmd *command, args []string) int {
	fset, a := runFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) < 1 {
		return usageError(cmd, "want IMAGE [COMMAND...]")
	}
	a.entrypointSet = fset.Changed("entrypoint")
	opts, err := a.options(pos)
	if err != nil {
		return failRun(err)
	}
	if err := a.checkCidfile(); err != nil {
		return failRun(err)
	}
	s, err := a.open()
	if err != nil {
		return failRun(err)
	}
	defer s.Close()
	r := runner.New(s).WithPuller(a.puller(s, os.Stderr, true))
	c, err := r.Create(opts)
	if err != nil {
		return failRun(err)
	}
	if err := a.writeCidfile(c.ID); err != nil {
		r.Remove(c, true)
		return failRun(err)
	}
	fmt.Println(c.ID)
	return exitOK
}
