// Command unionfuse-snapshotter serves containerd's snapshots API on a
// unix socket: the unionfuse snapshotter (package snapshotter), which
// users start as `unionfuse snapshotter`; the CLI runs this binary for
// that command. It is a binary of its own because containerd's gRPC and
// protobuf packages, which only it needs, would cost every other command
// of the CLI about 5 ms of package initialisation at each start
// (docs/benchmarks.md, "Container start"). make build and make install
// put it beside unionfuse.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/snapshotter"
)

// name is how the command calls itself in messages: the CLI command it is.
const name = "unionfuse snapshotter"

func main() { os.Exit(run(os.Args[1:])) }

// args holds the flags.
type args struct {
	root, address, helper string
}

// flags returns the flag set.
func flags() (*pflag.FlagSet, *args) {
	a := &args{}
	fset := pflag.NewFlagSet("snapshotter", pflag.ContinueOnError)
	fset.StringVar(&a.root, "root", "", "the snapshotter's `DIR` (default the layer store's root + /snapshotter)")
	fset.StringVar(&a.address, "address", "", "the unix `SOCKET` to serve on (default "+snapshotter.DefaultAddress()+")")
	fset.StringVar(&a.helper, "mount-helper", "", "return the unions as mounts of type fuse3.`PROGRAM` that containerd makes through mount.fuse3 (e.g. "+snapshotter.DefaultMountHelper+"), rather than serve them from one union server and return bind mounts")
	return fset, a
}

// run serves until SIGINT, SIGTERM or SIGHUP and returns the exit status:
// 0, 1 for a failure, 2 for a bad command line. With --help it prints
// the flags (the Options of `unionfuse help snapshotter`).
func run(argv []string) int {
	fset, a := flags()
	fset.SetOutput(io.Discard)
	fset.Usage = func() {}
	if err := fset.Parse(argv); errors.Is(err, pflag.ErrHelp) {
		fmt.Print("Options:\n" + fset.FlagUsages())
		return 0
	} else if err != nil {
		return usageError("%v", err)
	}
	if fset.NArg() > 0 {
		return usageError("unexpected argument %q", fset.Arg(0))
	}
	if a.root == "" {
		a.root = filepath.Join(cowcache.DefaultRoot(), "snapshotter")
	}
	if a.address == "" {
		a.address = snapshotter.DefaultAddress()
	}
	var opts []snapshotter.Opt
	if fset.Changed("mount-helper") {
		if a.helper == "" || strings.ContainsAny(a.helper, "/ \t,") {
			return usageError("--mount-helper wants a program name found through PATH, got %q", a.helper)
		}
		opts = append(opts, snapshotter.WithMountHelper(a.helper))
	}
	sn, err := snapshotter.New(a.root, opts...)
	if err != nil {
		return fail(err)
	}
	defer sn.Close()
	l, err := snapshotter.Listen(a.address)
	if err != nil {
		return fail(err)
	}
	defer os.Remove(a.address)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	fmt.Fprintf(os.Stderr, "%s: serving %s on %s\n", name, sn.Root(), a.address)
	if err := snapshotter.Serve(ctx, sn, l); err != nil {
		return fail(err)
	}
	return 0
}

// usageError prints a one-line usage error and returns 2.
func usageError(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "%s: %s (see 'unionfuse help snapshotter')\n", name, fmt.Sprintf(format, args...))
	return 2
}

// fail prints err on one line and returns 1.
func fail(err error) int {
	first, _, _ := strings.Cut(err.Error(), "\n")
	fmt.Fprintf(os.Stderr, "unionfuse: %s\n", first)
	return 1
}
