// Command unionfuse-fuse is the small binary that serves unions: the
// daemon that unionfuse mount (and the runner) start, and a mount command
// of its own in the fuse-overlayfs form, for podman's mount_program and
// scripts that start many mounts:
//
//	unionfuse-fuse [-f] [-d] -o lowerdir=L1:L2,upperdir=U,workdir=W [SOURCE] MERGED
//	unionfuse-fuse [mount] [-f] [-d] [-o OPT,...] LOWER[:LOWER...] [UPPER WORK] MERGED
//
// It takes the options of 'unionfuse mount' (see 'unionfuse help mount').
// It links only fs/, go-fuse and the daemon package, not the registry,
// network and build packages of the whole CLI, whose package
// initialisation and size cost every process that starts milliseconds;
// every union mount starts one. make build and make install put it
// beside unionfuse, where internal/daemon looks for it. It is also the
// union server of the containerd snapshotter (internal/unionserver).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/mountcmd"
	"github.com/unionfuse/unionfuse/internal/reexec"
	// The union-server role: the snapshotter's unions are served by
	// this binary.
	_ "github.com/unionfuse/unionfuse/internal/unionserver"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: unionfuse-fuse [mount] [-f] [-d] [-o OPT,...] LOWER[:LOWER...] [UPPER WORK] MERGED
       unionfuse-fuse [-f] [-d] -o lowerdir=L1:L2[,upperdir=U,workdir=W] [SOURCE] MERGED

The union filesystem of unionfuse alone (see 'unionfuse help mount' for the
options).
`

func main() {
	// Started by internal/daemon in the daemon role: serve and exit.
	if code, ok := reexec.Run(); ok {
		os.Exit(code)
	}
	os.Exit(run(os.Args[1:]))
}

// run runs the command line args and returns the exit status: 0, 1 for
// a failure, 2 for a bad command line.
func run(args []string) int {
	if len(args) > 0 && args[0] == "mount" {
		args = args[1:]
	}
	if len(args) == 1 && (args[0] == "-V" || args[0] == "--version") {
		fmt.Printf("unionfuse-fuse version %s\n", version)
		return 0
	}
	a := &mountcmd.Args{}
	fset := pflag.NewFlagSet("unionfuse-fuse", pflag.ContinueOnError)
	fset.SetOutput(io.Discard)
	a.AddFlags(fset)
	if err := fset.Parse(args); errors.Is(err, pflag.ErrHelp) {
		fmt.Print(usage + "\nOptions:\n" + fset.FlagUsages())
		return 0
	} else if err != nil {
		return usageError(err)
	}
	merged, cfg, err := a.Union(fset.Args())
	if err != nil {
		return usageError(err)
	}
	if !a.InForeground() {
		err = a.Start(merged, cfg)
	} else {
		stop := make(chan os.Signal, 4)
		signal.Notify(stop, daemon.StopSignals()...)
		err = a.Serve(merged, cfg, stop)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "unionfuse-fuse: %v\n", err)
		return 1
	}
	return 0
}

// usageError prints err as a bad command line and returns 2.
func usageError(err error) int {
	fmt.Fprintf(os.Stderr, "unionfuse-fuse: %v (see 'unionfuse-fuse --help')\n", err)
	return 2
}
