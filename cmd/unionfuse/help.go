package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

var helpCmd = &command{
	name:  "help",
	usage: "unionfuse help [COMMAND]",
	help:  "Show the help of unionfuse or of one command.",
	run: func(args []string) int {
		switch {
		case len(args) == 0:
			printMainHelp(os.Stdout)
		case len(args) > 1:
			return usageError(lookup("help"), "too many arguments")
		case lookup(args[0]) != nil:
			c := lookup(args[0])
			printHelp(os.Stdout, c, flagsOf(c))
		default:
			fmt.Fprintf(os.Stderr, "unionfuse help: unknown command %q (see 'unionfuse --help')\n", args[0])
			return exitUsage
		}
		return exitOK
	},
}

// flagsOf returns the flag set of c, for its help; nil when it has none.
func flagsOf(c *command) *pflag.FlagSet {
	switch c.name {
	case "mount":
		fset, _ := mountFlags()
		return fset
	case "umount":
		fset, _ := umountFlags()
		return fset
	}
	return nil
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

// printHelp prints the help of one command, with its flags when fset is
// not nil.
func printHelp(w io.Writer, c *command, fset *pflag.FlagSet) {
	help := c.help
	if c.options != nil {
		help += c.options()
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", c.usage, strings.TrimSpace(help))
	if fset != nil {
		fmt.Fprintf(w, "\nOptions:\n%s", fset.FlagUsages())
	}
}
