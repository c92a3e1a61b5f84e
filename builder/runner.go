package builder

import (
	"context"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/unionfuse/unionfuse/runner"
)

// RunnerExecutor is the Executor of real builds: runner containers with
// no network.
type RunnerExecutor struct {
	Runner *runner.Runner
	// CatchSignals, when not nil, starts catching the signals meant for
	// a RUN step's command, for the time of the step: it returns the
	// channel they arrive on (see runner.IO.Signals) and the function
	// that stops catching them.
	CatchSignals func() (<-chan os.Signal, func())
	// Warn, when not nil, is told the runner's warnings (see
	// runner.IO.Warn).
	Warn func(error)
	// StopTimeout is how long a RUN step's command may take to end
	// after the build is cancelled before it is killed (0: DefaultStopTimeout).
	StopTimeout time.Duration
}

// DefaultStopTimeout is a RUN step's time to end once its build is
// cancelled, as `unionfuse stop`'s default: its pid 1 ignores the
// signal it was passed unless it handles it.
const DefaultStopTimeout = 10 * time.Second

// Create makes a runner container for a step.
func (e RunnerExecutor) Create(ref string, p *Process) (Container, error) {
	// A container that is only mounted never runs; the runner wants a
	// command all the same.
	o := runner.Options{Image: ref, Network: "none", Transient: true, Cmd: []string{"/bin/sh", "-c", "#(nop) mounted by unionfuse build"}, Entrypoint: []string{}}
	if p != nil {
		o.Cmd, o.Entrypoint, o.Env = p.Args, []string{}, p.Env
	}
	c, err := e.Runner.Create(o)
	if err != nil {
		return nil, err
	}
	return runnerContainer{e: e, c: c}, nil
}

// runnerContainer is a runner.Container as a build step's Container.
type runnerContainer struct {
	e RunnerExecutor
	c *runner.Container
}

func (c runnerContainer) ID() string             { return c.c.ID }
func (c runnerContainer) Mount() (string, error) { return c.e.Runner.Mount(c.c) }
func (c runnerContainer) Unmount() error         { return c.e.Runner.Unmount(c.c) }
func (c runnerContainer) UpperDir() string       { return c.c.UpperDir() }
func (c runnerContainer) Remove() error          { return c.e.Runner.Remove(c.c, true) }
func (c runnerContainer) LayerIdle() error       { return c.e.Runner.LayerIdle(c.c) }

func (c runnerContainer) Run(ctx context.Context, stdout, stderr io.Writer) (int, error) {
	stdio := runner.IO{Stdout: stdout, Stderr: stderr, Warn: c.e.Warn}
	if c.e.CatchSignals != nil {
		signals, stop := c.e.CatchSignals()
		defer stop()
		stdio.Signals = signals
	}
	done := make(chan struct{})
	defer close(done)
	go c.killWhenCancelled(ctx, done)
	return c.e.Runner.Run(c.c, stdio)
}

// killWhenCancelled kills the container's command once the stop timeout
// has passed after ctx was cancelled, unless done is closed first (the
// command ended).
func (c runnerContainer) killWhenCancelled(ctx context.Context, done <-chan struct{}) {
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	timeout := c.e.StopTimeout
	if timeout == 0 {
		timeout = DefaultStopTimeout
	}
	select {
	case <-done:
		return
	case <-time.After(timeout):
	}
	// Run owns c.c's state: kill through a fresh copy of it. The signal
	// may have come before Run recorded the command's pid (a loaded
	// machine, a short stop timeout): try again until the kill lands or
	// the command ends.
	retry := time.NewTicker(50 * time.Millisecond)
	defer retry.Stop()
	for {
		if cur, err := c.e.Runner.Get(c.c.ID); err == nil && c.e.Runner.Kill(cur, syscall.SIGKILL) == nil {
			return
		}
		select {
		case <-done:
			return
		case <-retry.C:
		}
	}
}
