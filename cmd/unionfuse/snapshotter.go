package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/unionfuse/unionfuse/internal/reexec"
)

// snapshotterSuffix names the binary that serves the snapshotter
// (cmd/unionfuse-snapshotter) beside this one.
const snapshotterSuffix = "-snapshotter"

var snapshotterCmd = &command{
	name:  "snapshotter",
	usage: "unionfuse snapshotter [--root DIR] [--address SOCKET] [--mount-helper PROGRAM]",
	help: `Serve containerd's snapshots API on a unix socket: a proxy snapshotter whose
containers run on unionfuse mounts. Register it in containerd's config.toml
and use it with --snapshotter unionfuse (ctr, nerdctl):

  [proxy_plugins.unionfuse]
    type = "snapshot"
    address = "/run/unionfuse/snapshotter.sock"

The unions are served by one union server (unionfuse-fuse, started by the
snapshotter, outliving it) and returned as bind mounts; with
--mount-helper PROGRAM they are returned as fuse3.PROGRAM mounts that
containerd makes through mount.fuse3. SIGINT or SIGTERM stops serving;
mounts already made stay. The command is served by unionfuse-snapshotter,
installed beside unionfuse. See docs/snapshotter.md.`,
	host:    true,
	own:     true,
	options: snapshotterOptions,
	run:     runSnapshotter,
}

// runSnapshotter becomes unionfuse-snapshotter with args (no return when
// it can).
func runSnapshotter(cmd *command, args []string) int {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" {
			printHelp(os.Stdout, cmd)
			return exitOK
		}
	}
	bin, err := snapshotterBinary()
	if err != nil {
		return fail(err)
	}
	err = syscall.Exec(bin, append([]string{"unionfuse-snapshotter"}, args...), os.Environ())
	return fail(fmt.Errorf("snapshotter: %w", err))
}

// snapshotterOptions is the Options section of the command's help, as
// unionfuse-snapshotter prints it.
func snapshotterOptions() string {
	bin, err := snapshotterBinary()
	if err != nil {
		return "\n\n" + err.Error()
	}
	out, err := exec.Command(bin, "--help").Output()
	if err != nil {
		return fmt.Sprintf("\n\n%s --help: %v", bin, err)
	}
	return "\n\n" + strings.TrimRight(string(out), "\n") + "\n"
}

// snapshotterBinary returns the path of unionfuse-snapshotter beside this
// binary.
func snapshotterBinary() (string, error) {
	if bin := reexec.Sibling(snapshotterSuffix); bin != "" {
		return bin, nil
	}
	exe, _ := os.Executable()
	return "", fmt.Errorf("snapshotter: %s%s is not installed beside %s (make install puts it there)", exe, snapshotterSuffix, exe)
}
