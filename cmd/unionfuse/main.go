// Command unionfuse is a union filesystem in user space and the container
// tools built on it. It mounts a stack of read-only lower directories
// under one writable upper directory, served over FUSE with the on-disk
// format of the kernel's overlayfs; it stores images as layers, builds them
// from Dockerfiles and runs containers on such mounts.
//
//	unionfuse mount LOWER[:LOWER...] UPPER WORK MERGED
//	unionfuse -o lowerdir=...,upperdir=...,workdir=... MERGED
//	mount -t fuse.unionfuse unionfuse MERGED -o lowerdir=...
//	unionfuse umount MERGED
//	unionfuse build -t NAME[:TAG] CONTEXT
//	unionfuse run [OPTIONS] IMAGE [COMMAND [ARG...]]
//	unionfuse help [COMMAND]    (every command: images, ps, rm, ...)
//
// The binary is also its own helper processes: started again in a process
// role (the FUSE daemon, a container's monitor or init, ...; see
// internal/reexec), it runs that role, chosen before any command line is
// read. This file dispatches; the command table (commands.go) lists every
// subcommand, each a file of its own that parses its flags, calls fs/,
// cowcache/, builder/ or runner/, and prints. This layer owns the terminal
// and the process's signals (signals.go): the packages below are handed
// them.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/unionfuse/unionfuse/internal/reexec"
	"github.com/unionfuse/unionfuse/runner"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

// Exit statuses (run, start -a and exec return the container's, see
// runner.ExitUnionfuseFailed and the others).
const (
	exitOK    = 0
	exitFail  = 1 // the command was understood but failed
	exitUsage = 2 // bad command line of a command of unionfuse's own
	// exitDockerUsage is docker's status for a bad command line (its
	// cli.FlagErrorFunc), which podman gives for bad arguments too.
	exitDockerUsage = 125
	// exitInterrupted is what a shell reports for a command stopped by
	// Ctrl-C (128+SIGINT), for one that stopped cleanly on it.
	exitInterrupted = 130
)

func main() {
	// A process started in a role (the FUSE daemon, a container's monitor
	// or init, ...: see internal/reexec) runs that role and nothing else.
	if code, ok := reexec.Run(); ok {
		os.Exit(code)
	}
	os.Exit(run(os.Args))
}

// run runs the command line argv and returns the exit status.
func run(argv []string) int {
	if strings.HasPrefix(filepath.Base(argv[0]), "mount.fuse.") {
		return runHelper(argv[1:])
	}
	args := argv[1:]
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "unionfuse: no command given (see 'unionfuse --help')")
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help":
		printMainHelp(os.Stdout)
		return exitOK
	case "-V", "--version":
		fmt.Printf("unionfuse %s\n", version)
		return exitOK
	}
	if c := lookup(args[0]); c != nil {
		if !c.host {
			// Not root, with subordinate ids: store and container commands
			// run in the user's rootless user namespace (no return).
			if err := runner.EnterUserNamespace(argv); err != nil {
				return fail(err)
			}
		}
		return c.run(c, args[1:])
	}
	// The fuse-overlayfs form: unionfuse [-f] [-d] -o lowerdir=... [SOURCE] MERGED,
	// which is also how mount.fuse3 runs a helper.
	if strings.HasPrefix(args[0], "-") || hasOptionFlag(args) {
		return mountCmd.run(mountCmd, args)
	}
	fmt.Fprintf(os.Stderr, "unionfuse: unknown command %q (see 'unionfuse --help')\n", args[0])
	return exitUsage
}

// usageError prints a one-line usage error for c and returns its usage
// status: exitUsage for a command of unionfuse's own, exitDockerUsage for
// the others.
func usageError(c *command, format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "unionfuse %s: %s (see 'unionfuse help %s')\n", c.name, fmt.Sprintf(format, args...), c.name)
	if c.own {
		return exitUsage
	}
	return exitDockerUsage
}

// fail prints err on one line and returns exitFail.
func fail(err error) int {
	fmt.Fprintf(os.Stderr, "unionfuse: %s\n", errorLine(err))
	return exitFail
}

// warn prints err as a warning: what went wrong without failing the
// command.
func warn(err error) { fmt.Fprintf(os.Stderr, "unionfuse: warning: %v\n", err) }
