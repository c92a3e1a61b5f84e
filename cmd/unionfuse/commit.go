package main

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/builder"
	"github.com/unionfuse/unionfuse/runner"
)

var commitCmd = &command{
	name:  "commit",
	usage: "unionfuse commit [-m MESSAGE] [-a AUTHOR] [-c INSTRUCTION]... CONTAINER [REPOSITORY[:TAG]]",
	help: `Make a new image from a container: its image's layers plus the
container's layer (whiteouts and opaque directories included), with the
container's command, environment, working directory and user, changed by
-c's Dockerfile instructions (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
USER, VOLUME, WORKDIR, STOPSIGNAL; docker's). Prints the new image's id.`,
	options: optionsOf(commitFlags),
	run:     runCommit,
}

type commitArgs struct {
	containerArgs
	message, author string
	changes         []string
}

func commitFlags() (*pflag.FlagSet, *commitArgs) {
	a := &commitArgs{}
	fset := newContainerFlags("commit", &a.containerArgs)
	fset.StringVarP(&a.message, "message", "m", "", "the history's comment")
	fset.StringVarP(&a.author, "author", "a", "", "the image's author")
	fset.StringArrayVarP(&a.changes, "change", "c", nil, "apply the Dockerfile `INSTRUCTION` (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL)")
	return fset, a
}

func runCommit(cmd *command, args []string) int {
	fset, a := commitFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageError(cmd, "want CONTAINER [REPOSITORY[:TAG]]")
	}
	return a.withRunner(func(r *runner.Runner) int {
		c, err := r.Get(pos[0])
		if err != nil {
			return fail(err)
		}
		o := runner.CommitOptions{Comment: a.message, Author: a.author,
			Change: func(cfg *v1.Config) error { return builder.ApplyChanges(cfg, a.changes) }}
		if len(pos) == 2 {
			o.Name = pos[1]
		}
		img, err := r.Commit(c, o)
		if err != nil {
			return fail(err)
		}
		fmt.Println(img.ID)
		return exitOK
	})
}
