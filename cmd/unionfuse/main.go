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
// The binary is also its own helper processes: started again as
// /proc/self/exe, it becomes the FUSE daemon or a part of a running
// container, chosen before any command line is read. This file
// dispatches; each subcommand is a file of its own that parses its flags,
// calls fs/, cowcache/, builder/ or runner/, and prints.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/internal/reexec"
	"github.com/unionfuse/unionfuse/runner"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1 // the command was understood but failed
	exitUsage = 2 // bad command line
)

// command is one subcommand.
type command struct {
	name  string
	usage string // one line: the synopsis
	help  string // the rest of `unionfuse help NAME`
	// options returns the Options section of the help (built only when
	// help is printed: flag sets are not made at every start).
	options func() string
	run     func(args []string) int
}

// commands lists the subcommands in the order help shows them.
var commands []*command

func init() {
	commands = []*command{mountCmd, umountCmd,
		pullCmd, pushCmd, loginCmd, logoutCmd,
		importCmd, loadCmd, saveCmd, imagesCmd, historyCmd, inspectCmd, tagCmd, rmiCmd, systemCmd, mountImageCmd,
		buildCmd, runCmd, psCmd, startCmd, stopCmd, restartCmd, killCmd, rmCmd, logsCmd, execCmd, portCmd, waitCmd, diffCmd, commitCmd, exportCmd,
		helpCmd, versionCmd}
}

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
		return versionCmd.run(args[1:])
	}
	if c := lookup(args[0]); c != nil {
		if !hostCommands[c.name] {
			// Not root, with subordinate ids: store and container commands
			// run in the user's rootless user namespace (no return).
			if err := runner.EnterUserNamespace(argv); err != nil {
				return fail(err)
			}
		}
		return c.run(args[1:])
	}
	// The fuse-overlayfs form: unionfuse [-f] [-d] -o lowerdir=... [SOURCE] MERGED,
	// which is also how mount.fuse3 runs a helper.
	if strings.HasPrefix(args[0], "-") || hasOptionFlag(args) {
		return mountCmd.run(args)
	}
	fmt.Fprintf(os.Stderr, "unionfuse: unknown command %q (see 'unionfuse --help')\n", args[0])
	return exitUsage
}

// hostCommands run where they are called, never in the rootless user
// namespace: their mounts must be seen by the caller (login and logout:
// the credentials file stays the caller's).
var hostCommands = map[string]bool{"mount": true, "umount": true, "mount-image": true, "help": true, "version": true,
	"login": true, "logout": true}

// lookup returns the subcommand called name, or nil.
func lookup(name string) *command {
	if name == "unmount" {
		name = "umount"
	}
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// hasOptionFlag reports whether args hold an -o option.
func hasOptionFlag(args []string) bool {
	for _, a := range args {
		if a == "-o" || a == "--options" || strings.HasPrefix(a, "-o") && !strings.HasPrefix(a, "--") ||
			strings.HasPrefix(a, "--options=") {
			return true
		}
	}
	return false
}

// parseFlags parses args with fset. It prints the help of c and returns
// (nil, exitOK) for -h; it prints one line and returns (nil, exitUsage) for
// a bad flag.
func parseFlags(c *command, fset *pflag.FlagSet, args []string) ([]string, int, bool) {
	fset.SetOutput(io.Discard)
	fset.Usage = func() {}
	err := fset.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		printHelp(os.Stdout, c, fset)
		return nil, exitOK, false
	}
	if err != nil {
		return nil, usageError(c, "%v", err), false
	}
	return fset.Args(), 0, true
}

// usageError prints a one-line usage error for c and returns exitUsage.
func usageError(c *command, format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "unionfuse %s: %s (see 'unionfuse help %s')\n", c.name, fmt.Sprintf(format, args...), c.name)
	return exitUsage
}

// warn prints err as a warning: what went wrong without failing the
// command.
func warn(err error) { fmt.Fprintf(os.Stderr, "unionfuse: warning: %v\n", err) }

// fail prints err on one line and returns exitFail.
func fail(err error) int {
	first, _, _ := strings.Cut(err.Error(), "\n")
	fmt.Fprintf(os.Stderr, "unionfuse: %s\n", first)
	return exitFail
}

var versionCmd = &command{
	name:  "version",
	usage: "unionfuse version",
	help:  "Print the version of unionfuse (also: unionfuse --version).",
	run: func(args []string) int {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			printHelp(os.Stdout, lookup("version"), nil)
			return exitOK
		}
		if len(args) > 0 {
			return usageError(lookup("version"), "unexpected argument %q", args[0])
		}
		fmt.Printf("unionfuse %s\n", version)
		return exitOK
	},
}
