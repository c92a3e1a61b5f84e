package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/internal/format"
)

var historyCmd = &command{
	name:  "history",
	usage: "unionfuse history [--no-trunc] [-q] [--format FORMAT] IMAGE",
	help: `Show the steps that made an image, newest first, as docker history does:
IMAGE is the id of the image that ends at that step (<missing> when the store
has none), SIZE the bytes the step's layer adds (0B for steps that only
changed the config). --format takes a Go template (see docs/run.md) with the
fields ID, CreatedSince, CreatedAt, CreatedBy, Size and Comment; "table ..."
prints a header, json one JSON object per line.`,
	options: optionsOf(historyFlags),
	run:     runHistory,
}

type historyArgs struct {
	storeFlags
	noTrunc, quiet bool
	format         string
}

func historyFlags() (*pflag.FlagSet, *historyArgs) {
	a := &historyArgs{}
	fset := pflag.NewFlagSet("history", pflag.ContinueOnError)
	a.add(fset)
	fset.BoolVar(&a.noTrunc, "no-trunc", false, "print full ids and commands")
	fset.BoolVarP(&a.quiet, "quiet", "q", false, "print only the IMAGE column")
	fset.StringVar(&a.format, "format", "", "print each step through the Go `TEMPLATE`, or json")
	return fset, a
}

// historyRow is one step as history's --format sees it (docker's names).
type historyRow struct {
	ID, CreatedSince, CreatedAt, CreatedBy, Size, Comment string
}

// historyHeader is the header of a history table, by field.
var historyHeader = map[string]string{"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
	"CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}

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
	var out *format.Writer
	if !format.IsDefault(a.format) && !a.quiet {
		var err error
		if out, err = format.New(os.Stdout, a.format, historyHeader); err != nil {
			return usageError(cmd, "%v", err)
		}
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
	if out != nil {
		return printHistoryFormat(out, steps, a.noTrunc)
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id, since(st.Created), createdBy(st.CreatedBy, a.noTrunc), sizeString(st.Size), st.Comment)
	}
	tw.Flush()
	return exitOK
}

// createdBy is a step's command on one line, cut as docker's column
// unless noTrunc.
func createdBy(cmd string, noTrunc bool) string {
	by := strings.Join(strings.Fields(cmd), " ")
	if !noTrunc && len([]rune(by)) > createdByWidth {
		by = string([]rune(by)[:createdByWidth-1]) + "…"
	}
	return by
}

// printHistoryFormat prints the steps through out.
func printHistoryFormat(out *format.Writer, steps []cowcache.HistoryEntry, noTrunc bool) int {
	rows := make([]historyRow, len(steps))
	for i, st := range steps {
		id := "<missing>"
		if st.ID != "" {
			id = imageID(st.ID, noTrunc)
		}
		rows[i] = historyRow{ID: id, CreatedSince: since(st.Created), CreatedAt: st.Created.Format(time.RFC3339),
			CreatedBy: createdBy(st.CreatedBy, noTrunc), Size: sizeString(st.Size), Comment: st.Comment}
	}
	return printRows(out, rows)
}
