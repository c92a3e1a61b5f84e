package main

import (
	"errors"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/internal/timestamp"
	"github.com/unionfuse/unionfuse/runner"
)

var logsCmd = &command{
	name:  "logs",
	usage: "unionfuse logs [-f] [-t] [--tail N] [--since T] [--until T] CONTAINER",
	help: `Print what a container wrote, detached or in the foreground: its stdout
here on stdout, its stderr on stderr (with -t, a terminal, both are its
stdout). With -f, keep printing until it stops. --since and --until take
an RFC 3339 time (2024-05-06T07:00:00Z, 2024-05-06), a Unix timestamp or
a duration before now (10m, 1h); -t puts each line's time before it.`,
	options: optionsOf(logsFlags),
	run:     runLogs,
}

type logsArgs struct {
	containerArgs
	follow, timestamps bool
	tail, since, until string
}

func logsFlags() (*pflag.FlagSet, *logsArgs) {
	a := &logsArgs{}
	fset := newContainerFlags("logs", &a.containerArgs)
	fset.BoolVarP(&a.follow, "follow", "f", false, "follow the log until the container stops")
	fset.BoolVarP(&a.timestamps, "timestamps", "t", false, "show each line's time")
	fset.StringVarP(&a.tail, "tail", "n", "all", "print the last `N` lines (all: every line)")
	fset.StringVar(&a.since, "since", "", "print the lines logged since `T` (time, Unix timestamp or duration before now)")
	fset.StringVar(&a.until, "until", "", "print the lines logged before `T` (time, Unix timestamp or duration before now)")
	return fset, a
}

// logOptions turns the flags into runner.LogOptions.
func (a *logsArgs) logOptions() (runner.LogOptions, error) {
	o := runner.LogOptions{Follow: a.follow, Timestamps: a.timestamps, Tail: -1}
	if a.tail != "all" && a.tail != "" {
		n, err := strconv.Atoi(a.tail)
		if err != nil {
			return o, errors.New("invalid --tail: want a number or all, not " + strconv.Quote(a.tail))
		}
		o.Tail = n // negative: all, as docker
	}
	now := time.Now()
	for _, f := range []struct {
		value string
		to    *time.Time
	}{{a.since, &o.Since}, {a.until, &o.Until}} {
		if f.value == "" {
			continue
		}
		t, err := timestamp.Parse(f.value, now)
		if err != nil {
			return o, err
		}
		*f.to = t
	}
	return o, nil
}

func runLogs(cmd *command, args []string) int {
	fset, a := logsFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(cmd, "want one CONTAINER")
	}
	o, err := a.logOptions()
	if err != nil {
		return usageError(cmd, "%v", err)
	}
	return a.withRunner(func(r *runner.Runner) int {
		c, err := r.Get(pos[0])
		if err != nil {
			return fail(err)
		}
		if err := r.Logs(c, os.Stdout, os.Stderr, o); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(err)
		}
		return exitOK
	})
}
