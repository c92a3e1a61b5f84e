// Command unionfuse-init is the small binary that becomes each
// container's first process: it sets up the container's root in its new
// namespaces and execs the container's command (the init role of package
// runner). unionfuse starts it for run, start and build when it is beside
// the CLI (make build and make install put it there), else the CLI itself
// in that role. It links the runner alone, without the registry client,
// the image builder and the containerd snapshotter, whose package
// initialisation would cost every container start about ten milliseconds
// (docs/benchmarks.md, "Container start"). It is not a command for users.
package main

import (
	"fmt"
	"os"

	"github.com/unionfuse/unionfuse/internal/reexec"
	_ "github.com/unionfuse/unionfuse/runner" // registers the init role
)

func main() {
	if code, ok := reexec.Run(); ok {
		os.Exit(code)
	}
	fmt.Fprintln(os.Stderr, "unionfuse-init: the first process of unionfuse's containers, started by unionfuse; not a command of its own")
	os.Exit(2)
}
