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
	args, ok := rootFirst(argv[1:])
	if !ok {
		fmt.Fprintln(os.Stderr, "unionfuse: --root needs a directory")
		return exitUsage
	}
	argv = append(argv[:1:1], args...)
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

// rootFirst moves a --root DIR (or --root=DIR) given before the command,
// as docker and podman take their global flags, to after it, where the
// command's flags are read: "--root D images" is "images --root D", and
// "--root D" alone is no command. It reports false for a --root without
// its directory.
func rootFirst(args []string) ([]string, bool) {
	if len(args) == 0 {
		return args, true
	}
	var flag []string
	switch {
	case args[0] == "--root":
		if len(args) < 2 {
			return nil, false
		}
		flag, args = args[:2], args[2:]
	case strings.HasPrefix(args[0], "--root="):
		flag, args = args[:1], args[1:]
	default:
		return args, true
	}
	if len(args) == 0 {
		return nil, true
	}
	return append(append([]string{args[0]}, flag...), args[1:]...), true
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
