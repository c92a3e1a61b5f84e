package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/snapshotter"
)

var snapshotterCmd = &command{
	name:  "snapshotter",
	usage: "unionfuse snapshotter [--root DIR] [--address SOCKET]",
	help: `Serve containerd's snapshots API on a unix socket: a proxy snapshotter whose
containers run on unionfuse mounts. Register it in containerd's config.toml
and use it with --snapshotter unionfuse (ctr, nerdctl):

  [proxy_plugins.unionfuse]
    type = "snapshot"
    address = "/run/unionfuse/snapshotter.sock"

containerd mounts what it returns with mount.fuse3, which runs 'unionfuse'
found through containerd's PATH. SIGINT or SIGTERM stops serving; mounts
already made stay. See docs/snapshotter.md.`,
	host:    true,
	own:     true,
	options: optionsOf(snapshotterFlags),
	run:     runSnapshotter,
}

// snapshotterArgs holds the flags of unionfuse snapshotter.
type snapshotterArgs struct {
	root, address, helper string
}

// snapshotterFlags returns the flag set of unionfuse snapshotter.
func snapshotterFlags() (*pflag.FlagSet, *snapshotterArgs) {
	a := &snapshotterArgs{}
	fset := pflag.NewFlagSet("snapshotter", pflag.ContinueOnError)
	fset.StringVar(&a.root, "root", "", "the snapshotter's `DIR` (default the layer store's root + /snapshotter)")
	fset.StringVar(&a.address, "address", "", "the unix `SOCKET` to serve on (default "+snapshotter.DefaultAddress()+")")
	fset.StringVar(&a.helper, "mount-helper", snapshotter.DefaultMountHelper, "the `PROGRAM` mount.fuse3 runs for the unions (mount type fuse3.PROGRAM); when the default is not on PATH, unionfuse")
	return fset, a
}

func runSnapshotter(cmd *command, args []string) int {
	fset, a := snapshotterFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(cmd, "unexpected argument %q", pos[0])
	}
	if a.root == "" {
		a.root = filepath.Join(cowcache.DefaultRoot(), "snapshotter")
	}
	if a.address == "" {
		a.address = snapshotter.DefaultAddress()
	}
	if a.helper == "" || strings.ContainsAny(a.helper, "/ \t,") {
		return usageError(cmd, "--mount-helper wants a program name found through PATH, got %q", a.helper)
	}
	sn, err := snapshotter.New(a.root, snapshotter.WithMountHelper(a.helper))
	if err != nil {
		return fail(err)
	}
	defer sn.Close()
	l, err := snapshotter.Listen(a.address)
	if err != nil {
		return fail(err)
	}
	defer os.Remove(a.address)
	ctx, stop := interruptible()
	defer stop()
	fmt.Fprintf(os.Stderr, "unionfuse snapshotter: serving %s on %s\n", sn.Root(), a.address)
	if err := snapshotter.Serve(ctx, sn, l); err != nil {
		return fail(err)
	}
	return exitOK
}
