package runner

import (
	"errors"
	"os/exec"
	"syscall"
)

// Exit statuses of a container whose command did not run, Docker's: what
// `unionfuse run`, `start -a` and `exec` return instead of the command's.
const (
	// ExitUnionfuseFailed: unionfuse itself failed (Docker's 125, an
	// error of the daemon or of the command line).
	ExitUnionfuseFailed = 125
	// ExitCannotInvoke: the command was found but cannot be executed.
	ExitCannotInvoke = 126
	// ExitNotFound: the command was not found.
	ExitNotFound = 127
)

// ExitError is a container that could not run its command, with the exit
// status Docker gives for it (ExitNotFound, ExitCannotInvoke or
// ExitUnionfuseFailed).
type ExitError struct {
	Code    int
	Message string
}

func (e *ExitError) Error() string { return e.Message }

// exitCodeOf is the exit status for err: its own for an *ExitError,
// ExitUnionfuseFailed otherwise.
func exitCodeOf(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitUnionfuseFailed
}

// exitStatus turns a wait status into a shell's exit status (128+signal
// for a process killed by a signal).
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return ExitUnionfuseFailed
}
