package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

var historyCmd = &command{
	name:  "history",
	usage: "unionfuse history [--no-trunc] [-q] IMAGE",
	help: `Show the steps that made an image, newest first, as docker history does:
IMAGE is the id of the image that ends at that step (<missing> when the store
has none), SIZE the bytes the step's layer adds (0B for steps that only
changed the config).`,
	options: optionsOf(historyFlags),
	run:     runHistory,
}

type historyArgs struct {
	storeFlags
	noTrunc, quiet bool
}

func historyFlags() (*pflag.FlagSet, *historyArgs) {
	a := &historyArgs{}
	fset := pflag.NewFlagSet("history", pflag.ContinueOnError)
	a.add(fset)
	fset.BoolVar(&a.noTrunc, "no-trunc", false, "print full ids and commands")
	fset.BoolVarP(&a.quiet, "quiet", "q", false, "print only the IMAGE column")
	return fset, a
}

// createdByWidth is where docker cuts the CREATED BY column.
const createdByWidth = 45

func runHistory(cmd *command, args []string) int {
	fset, a := historyFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(cmd, "want one IMAGE, got %d arguments", len(pos))
	}
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	img, err := s.Image(pos[0])
	if err != nil {
		return fail(err)
	}
	steps, err := s.History(img)
	if err != nil {
		return fail(err)
	}
	tw := newTable()
	if !a.quiet {
		fmt.Fprintln(tw, "IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT")
	}
	for _, st := range steps {
		id := "<missing>"
		if st.ID != "" {
			id = imageID(st.ID, a.noTrunc)
		}
		if a.quiet {
			fmt.Fprintln(tw, id)
			continue
		}
		by := strings.Join(strings.Fields(st.CreatedBy), " ")
		if !a.noTrunc && len([]rune(by)) > createdByWidth {
			by = string([]rune(by)[:createdByWidth-1]) + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id, since(st.Created), by, sizeString(st.Size), st.Comment)
	}
	tw.Flush()
	return exitOK
}
