// Package tool runs the commands a benchmark measures: their output goes
// to a log, and a failure quotes the command and its last line.
package tool

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Log is where the commands' output goes (nil: nowhere).
var Log io.Writer

// Run runs name with args and env added, its output in Log, and returns
// the CPU time (user and system, with the descendants waited for) it
// used.
func Run(env []string, name string, args ...string) (time.Duration, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if Log != nil {
		fmt.Fprintf(Log, "%s $ %s %s\n%s", time.Now().Format(time.TimeOnly), name, strings.Join(args, " "), out.String())
	}
	if err != nil {
		return cpu, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, lastLine(out.String()))
	}
	return cpu, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// Output returns a command's first line of output, or "?".
func Output(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}
