package builder

import (
	"io"

	"github.com/unionfuse/unionfuse/runner"
)

// runnerExecutor is the Executor of real builds: runner containers with
// no network.
type runnerExecutor struct{ r *runner.Runner }

// NewRunnerExecutor returns an Executor whose containers are r's.
func NewRunnerExecutor(r *runner.Runner) Executor { return runnerExecutor{r} }

func (e runnerExecutor) Create(ref string, p *Process) (Container, error) {
	// A container that is only mounted never runs; the runner wants a
	// command all the same.
	o := runner.Options{Image: ref, Network: "none", Cmd: []string{"/bin/sh", "-c", "#(nop) mounted by unionfuse build"}, Entrypoint: []string{}}
	if p != nil {
		o.Cmd, o.Entrypoint, o.Env = p.Args, []string{}, p.Env
	}
	c, err := e.r.Create(o)
	if err != nil {
		return nil, err
	}
	return runnerContainer{r: e.r, c: c}, nil
}

// runnerContainer is a runner.Container as a build step's Container.
type runnerContainer struct {
	r *runner.Runner
	c *runner.Container
}

func (c runnerContainer) ID() string             { return c.c.ID }
func (c runnerContainer) Mount() (string, error) { return c.r.Mount(c.c) }
func (c runnerContainer) Unmount() error         { return c.r.Unmount(c.c) }
func (c runnerContainer) UpperDir() string       { return c.c.UpperDir() }
func (c runnerContainer) Remove() error          { return c.r.Remove(c.c, true) }

func (c runnerContainer) Run(stdout, stderr io.Writer) (int, error) {
	return c.r.Run(c.c, runner.IO{Stdout: stdout, Stderr: stderr})
}
