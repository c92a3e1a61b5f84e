package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/unionfuse/unionfuse/runner"
)

var topCmd = &command{
	name:  "top",
	usage: "unionfuse top CONTAINER [ps OPTIONS]",
	help: `Show the processes of a running container: the host's ps(1) with ps
OPTIONS (default -ef), the lines of the container's processes (those of
its cgroup, or of its pid namespace without one). Pids and users are the
host's, as in docker.`,
	options: containerFlagsHelp("top"),
	run:     runTop,
}

func runTop(cmd *command, args []string) int {
	a := &containerArgs{}
	fset := newContainerFlags("top", a)
	fset.SetInterspersed(false) // what follows CONTAINER is ps's
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return usageError(cmd, "want CONTAINER [ps OPTIONS]")
	}
	psArgs := pos[1:]
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	return a.withRunner(func(r *runner.Runner) int {
		c, err := r.Get(pos[0])
		if err != nil {
			return fail(err)
		}
		pids, err := r.Pids(c)
		if err != nil {
			return fail(err)
		}
		titles, rows, err := psRows(psArgs, pids)
		if err != nil {
			return fail(err)
		}
		t := newTable()
		fmt.Fprintln(t, strings.Join(titles, "\t"))
		for _, row := range rows {
			fmt.Fprintln(t, strings.Join(row, "\t"))
		}
		t.Flush()
		return exitOK
	})
}

// psRows runs ps with args and keeps the lines of pids, as docker's
// daemon does: the header's words are the columns, the last column takes
// the rest of a line (a command and its arguments).
func psRows(args []string, pids []int) (titles []string, rows [][]string, err error) {
	out, err := exec.Command("ps", args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		return nil, nil, fmt.Errorf("ps %s: %v: %s", strings.Join(args, " "), err, msg)
	}
	lines := strings.Split(string(bytes.TrimRight(out, "\n")), "\n")
	titles = strings.Fields(lines[0])
	pidCol := slices.Index(titles, "PID")
	if pidCol < 0 {
		return nil, nil, fmt.Errorf("couldn't find PID field in ps output")
	}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) <= pidCol {
			continue
		}
		pid, err := strconv.Atoi(f[pidCol])
		if err != nil || !slices.Contains(pids, pid) {
			continue
		}
		if len(f) > len(titles) {
			f = append(f[:len(titles)-1], strings.Join(f[len(titles)-1:], " "))
		}
		rows = append(rows, f)
	}
	return titles, rows, nil
}
