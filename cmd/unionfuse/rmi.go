package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
)

var rmiCmd = &command{
	name:  "rmi",
	usage: "unionfuse rmi [-f] IMAGE...",
	help: `Remove images, as docker rmi does. By name, an image with other names only
loses that name (Untagged); its last name or its id removes the image, and
then every layer no other image or container uses (Deleted). An image with
several names is removed by id only with -f; an image a container uses is
never removed.`,
	options: optionsOf(rmiFlags),
	run:     runRmi,
}

type rmiArgs struct {
	storeFlags
	force bool
}

func rmiFlags() (*pflag.FlagSet, *rmiArgs) {
	a := &rmiArgs{}
	fset := pflag.NewFlagSet("rmi", pflag.ContinueOnError)
	a.add(fset)
	fset.BoolVarP(&a.force, "force", "f", false, "remove an image by id even if it has several names")
	return fset, a
}

func runRmi(cmd *command, args []string) int {
	fset, a := rmiFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return usageError(cmd, "want at least one IMAGE")
	}
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	status := exitOK
	for _, ref := range pos {
		r, err := s.RemoveImage(ref, a.force)
		if err != nil {
			fmt.Fprintf(os.Stderr, "unionfuse rmi: %v\n", err)
			status = exitFail
			continue
		}
		printRemoved(r)
	}
	return status
}

// printRemoved prints what was removed in docker's words.
func printRemoved(r cowcache.Removed) {
	for _, n := range r.Untagged {
		fmt.Printf("Untagged: %s\n", n)
	}
	for _, id := range r.Images {
		fmt.Printf("Deleted: %s\n", id)
	}
	for _, id := range r.Layers {
		fmt.Printf("Deleted: %s\n", id)
	}
}
