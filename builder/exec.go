package builder

import (
	"context"
	"io"
)

// Process is what a RUN step runs, on top of the image's config.
type Process struct {
	Args []string // the command (the image's Entrypoint is cleared)
	Env  []string // K=V added to the image's Env (the step's ARGs)
}

// Executor gives a build its containers: runner.Runner's through
// RunnerExecutor, a fake in tests.
type Executor interface {
	// Create makes a container on the image ref ("" for an empty root)
	// that will run p (nil when the container is only mounted).
	Create(ref string, p *Process) (Container, error)
}

// Container is a build step's container. The builder Removes it in
// every case, after Unmount when it mounted it.
type Container interface {
	// ID is the container's id, for " ---> Running in ID".
	ID() string
	// Mount mounts the image's layers and the container's layer and
	// returns the merged root.
	Mount() (string, error)
	// Unmount undoes Mount.
	Unmount() error
	// Run runs the process to completion (mounting and unmounting by
	// itself) and returns its exit status. Once ctx is cancelled the
	// process is stopped: it has had the signal that cancelled the
	// build, and is killed if it has not ended within the stop timeout.
	Run(ctx context.Context, stdout, stderr io.Writer) (int, error)
	// UpperDir is the container's layer: an overlay upper directory.
	UpperDir() string
	// Remove removes the container and its layer.
	Remove() error
}

// IdleLayer is implemented by a Container that can tell that nothing
// uses its layer any more (no mount, no daemon serving it). The build
// then lets the store move the layer into the step's image layer instead
// of copying it (cowcache.UpperCommit.Move): the container is removed
// right after.
type IdleLayer interface {
	// LayerIdle returns nil when the layer is idle.
	LayerIdle() error
}
