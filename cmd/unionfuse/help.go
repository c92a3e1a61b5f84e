package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

var helpCmd = &command{
	name:  "help",
	usage: "unionfuse help [COMMAND]",
	help:  "Show the help of unionfuse or of one command.",
	host:  true,
	own:   true,
	run:   runHelp,
}

func runHelp(cmd *command, args []string) int {
	switch {
	case len(args) == 0:
		printMainHelp(os.Stdout)
	case len(args) > 1:
		return usageError(cmd, "too many arguments")
	case lookup(args[0]) != nil:
		printHelp(os.Stdout, lookup(args[0]))
	default:
		fmt.Fprintf(os.Stderr, "unionfuse help: unknown command %q (see 'unionfuse --help')\n", args[0])
		return exitUsage
	}
	return exitOK
}

var versionCmd = &command{
	name:    "version",
	usage:   "unionfuse version [-f FORMAT]",
	help:    "Print the version of unionfuse in docker's Client/Server layout (one line: unionfuse --version).",
	host:    true,
	own:     true,
	options: optionsOf(versionFlags),
	run:     runVersion,
}

// printMainHelp prints the overview: every command and the
// fuse-overlayfs form.
func printMainHelp(w io.Writer) {
	fmt.Fprintf(w, `unionfuse %s - union filesystem in user space (overlayfs over FUSE)

Usage:
`, version)
	for _, c := range commands {
		fmt.Fprintf(w, "  %s\n", c.usage)
	}
	fmt.Fprint(w, `  unionfuse [-f] [-d] -o lowerdir=L[:L...][,upperdir=U,workdir=W][,OPT...] [SOURCE] MERGED
  mount -t fuse.unionfuse unionfuse MERGED -o lowerdir=...,upperdir=...,workdir=...

Lower layers are given top first, as in the kernel's lowerdir=. Without an
upper layer the union is read-only.

Run 'unionfuse help COMMAND' or 'unionfuse COMMAND --help' for details.
`)
}

// printHelp prints the help of one command, with its options.
func printHelp(w io.Writer, c *command) {
	help := c.help
	if c.options != nil {
		help += c.options()
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", c.usage, strings.TrimSpace(help))
}
