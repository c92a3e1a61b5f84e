package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/unionfuse/unionfuse/runner"
)

// This file holds what the container commands (ps, start, stop, rm, ...)
// share: opening the runner and naming containers as docker does.

// withRunner opens the store and calls fn with a runner on it.
func (a *containerArgs) withRunner(fn func(r *runner.Runner) int) int {
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	return fn(runner.New(s))
}

// eachContainer calls fn for each named container, printing errors the
// way docker does (one line each, carrying on), and returns exitFail if
// any failed. With echo, each container done is printed as it was named
// (docker stop/start/kill/rm print their arguments back).
func eachContainer(c *command, r *runner.Runner, refs []string, echo bool, fn func(*runner.Container) error) int {
	status := exitOK
	for _, ref := range refs {
		ct, err := r.Get(ref)
		if err == nil {
			err = fn(ct)
		}
		if err == nil && echo {
			fmt.Println(ref)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "unionfuse %s: %v\n", c.name, err)
			status = exitFail
		}
	}
	return status
}

// statusString is docker ps's STATUS column.
func statusString(c *runner.Container) string {
	switch c.State.Status {
	case runner.StatusRunning:
		if c.Paused() {
			return "Up " + humanDuration(time.Since(c.State.StartedAt)) + " (Paused)"
		}
		return "Up " + humanDuration(time.Since(c.State.StartedAt))
	case runner.StatusExited:
		return fmt.Sprintf("Exited (%d) %s ago", c.State.ExitCode, humanDuration(time.Since(c.State.FinishedAt)))
	default:
		return "Created"
	}
}

// humanDuration is docker's units.HumanDuration: "Less than a second",
// "5 seconds", "About a minute", "3 minutes", "About an hour", ...
func humanDuration(d time.Duration) string {
	switch s := int(d.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	}
	switch m := int(d.Minutes()); {
	case m == 1:
		return "About a minute"
	case m < 60:
		return fmt.Sprintf("%d minutes", m)
	}
	switch h := int(d.Round(time.Hour).Hours()); {
	case h == 1:
		return "About an hour"
	case h < 48:
		return fmt.Sprintf("%d hours", h)
	default:
		return fmt.Sprintf("%d days", h/24)
	}
}

// createdString is docker ps's CREATED column: "5 minutes ago".
func createdString(t time.Time) string {
	return humanDuration(time.Since(t)) + " ago"
}

// commandString is docker ps's COMMAND column: quoted, cut to 20
// characters with an ellipsis.
func commandString(args []string) string {
	s := strings.Join(args, " ")
	if r := []rune(s); len(r) > 20 {
		s = string(r[:19]) + "…"
	}
	return `"` + s + `"`
}
