package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// ReadyFD is the descriptor on which a background process started by this
// program (a daemon, a union server) finds the write end of its readiness
// pipe: its parent passes it as the first of cmd.ExtraFiles.
const ReadyFD = 3

// ErrNoReport is AwaitReport's answer when the child closed the pipe
// (exited) without reporting.
var ErrNoReport = errors.New("no report")

// Reporter returns the function by which a process started with a
// readiness pipe reports to its parent: "ok", or "error: " and one line.
// Only the first report is sent; the pipe is then closed.
func Reporter() (report func(msg string)) {
	notify := os.NewFile(ReadyFD, "notify")
	syscall.CloseOnExec(ReadyFD)
	return func(msg string) {
		if notify != nil {
			fmt.Fprintln(notify, msg)
			notify.Close()
			notify = nil
		}
	}
}

// ReportError is the error a child reported, in its own words.
type ReportError struct{ Msg string }

func (e *ReportError) Error() string { return e.Msg }

// AwaitReport reads the child's report from the read end of its
// readiness pipe: nil for "ok", a *ReportError with the child's one-line
// error, ErrNoReport when it closed the pipe without reporting, or the
// read error.
func AwaitReport(r io.Reader) error {
	line, err := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSuffix(line, "\n")
	switch {
	case line == "ok":
		return nil
	case strings.HasPrefix(line, "error: "):
		return &ReportError{Msg: strings.TrimPrefix(line, "error: ")}
	case err != nil && err != io.EOF:
		return fmt.Errorf("readiness pipe: %w", err)
	}
	return ErrNoReport
}
