package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/runner"
)

// The command layer owns the process's signals: the packages below are
// handed what was caught (a channel, a context) and never catch any.

// catchSignals starts catching the signals meant for a container's
// command (runner.ForwardedSignals, and SIGWINCH to resize its terminal)
// and returns the channel they arrive on and the function that stops
// catching them.
func catchSignals() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, append(runner.ForwardedSignals(), syscall.SIGWINCH)...)
	return ch, func() { signal.Stop(ch) }
}

// attachedIO returns the IO of a container command attached to this
// process: its stdout and stderr, its stdin when withStdin, the signals
// it is sent (caught until stop is called) and warnings on stderr.
func attachedIO(withStdin bool) (stdio runner.IO, stop func()) {
	signals, stop := catchSignals()
	stdio = runner.IO{Stdout: os.Stdout, Stderr: os.Stderr, Signals: signals, Warn: warn}
	if withStdin {
		stdio.Stdin = os.Stdin
	}
	return stdio, stop
}

// catchStopSignals starts catching the signals that unmount a union
// served in the foreground (daemon.StopSignals), for the rest of the
// process's life: one that arrives while it ends after the unmount (as
// daemon.WaitUnmounted may send) must not kill it midway.
func catchStopSignals() <-chan os.Signal {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, daemon.StopSignals()...)
	return ch
}

// interruptible returns a context that Ctrl-C (SIGINT), SIGTERM and
// SIGHUP (the terminal went away) cancel, for a build or a registry
// transfer, and its release (which stops catching them).
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
}

// interrupted reports whether err ended a command whose context ctx (of
// interruptible) was cancelled by a signal.
func interrupted(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() != nil
}
