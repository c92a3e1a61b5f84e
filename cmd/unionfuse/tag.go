package main

import (
	"github.com/spf13/pflag"
)

var tagCmd = &command{
	name:  "tag",
	usage: "unionfuse tag SOURCE_IMAGE TARGET_IMAGE[:TAG]",
	help: `Give the image SOURCE_IMAGE (name or id) the name TARGET_IMAGE[:TAG]
(":latest" when no tag is given). An image that had that name keeps its
other names, or stays as a dangling image (<none>) until removed or pruned.`,
	options: optionsOf(tagFlags),
	run:     runTag,
}

func tagFlags() (*pflag.FlagSet, *storeFlags) {
	a := &storeFlags{}
	fset := pflag.NewFlagSet("tag", pflag.ContinueOnError)
	a.add(fset)
	return fset, a
}

func runTag(cmd *command, args []string) int {
	fset, a := tagFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return usageError(cmd, "want SOURCE_IMAGE TARGET_IMAGE, got %d arguments", len(pos))
	}
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	if err := s.Tag(pos[0], pos[1]); err != nil {
		return fail(err)
	}
	return exitOK
}
