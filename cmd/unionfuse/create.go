package main

import (
	"fmt"
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
	_, c, done, code := createFromFlags(cmd, fset, a, args)
	if c == nil {
		return code
	}
	defer done()
	fmt.Println(c.ID)
	return exitOK
}
