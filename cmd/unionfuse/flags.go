package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/runner"
)

// This file holds what the commands share to parse their command lines:
// the flags several commands have, and parsing with -h.

// storeFlags are the flags every store command has.
type storeFlags struct{ root string }

// add registers --root on fset.
func (sf *storeFlags) add(fset *pflag.FlagSet) {
	fset.StringVar(&sf.root, "root", "", "the layer store's `DIR` (default $"+cowcache.RootEnv+", else /var/lib/unionfuse as root, $XDG_DATA_HOME/unionfuse otherwise)")
}

// open opens the store. Containers a killed build left
// (runner.Options.Transient) are reaped first, so that no command sees
// them.
func (sf *storeFlags) open() (*cowcache.Store, error) {
	s, err := cowcache.Open(sf.root)
	if err == nil {
		runner.New(s).List()
	}
	return s, err
}

// limitFlags are the flags of the commands that unpack layers.
type limitFlags struct{ maxLayerSize string }

// add registers --max-layer-size on fset.
func (lf *limitFlags) add(fset *pflag.FlagSet) {
	fset.StringVar(&lf.maxLayerSize, "max-layer-size", "", "refuse a layer that expands past `SIZE` uncompressed (default "+
		humanize.IBytes(cowcache.DefaultMaxLayerSize)+"; a decompression bomb fails instead of filling the disk)")
}

// apply sets the store's limits from the flags.
func (lf *limitFlags) apply(s *cowcache.Store) error {
	if lf.maxLayerSize == "" {
		return nil
	}
	n, err := humanize.ParseBytes(lf.maxLayerSize)
	if err != nil || n == 0 {
		return fmt.Errorf("--max-layer-size %q: want a size such as 512MiB or 10GB", lf.maxLayerSize)
	}
	s.MaxLayerSize = int64(n)
	return nil
}

// containerArgs are the flags every container command has.
type containerArgs struct {
	storeFlags
}

// newContainerFlags returns a flag set with --root, for command name.
func newContainerFlags(name string, a *containerArgs) *pflag.FlagSet {
	fset := pflag.NewFlagSet(name, pflag.ContinueOnError)
	a.add(fset)
	return fset
}

// containerFlagsHelp is the options help of a command that takes only the
// store flags.
func containerFlagsHelp(name string) func() string {
	return optionsOf(func() (*pflag.FlagSet, *containerArgs) {
		a := &containerArgs{}
		return newContainerFlags(name, a), a
	})
}

// optionsOf returns the function that makes the Options section of a
// command's help from its flag set (a command's options field), so that
// 'unionfuse help CMD' shows the flags as 'CMD -h' does. The flag set is
// made only when help is printed.
func optionsOf[T any](flags func() (*pflag.FlagSet, T)) func() string {
	return func() string {
		fset, _ := flags()
		return optionsHelp(fset)
	}
}

// optionsHelp is the Options section of a help that lists fset's flags.
func optionsHelp(fset *pflag.FlagSet) string {
	return "\n\nOptions:\n" + fset.FlagUsages()
}

// parseFlags parses args of command c with fset. It prints the help of c
// and returns (nil, exitOK, false) for -h; it prints one line and returns
// (nil, exitUsage, false) for a bad flag.
func parseFlags(c *command, fset *pflag.FlagSet, args []string) ([]string, int, bool) {
	fset.SetOutput(io.Discard)
	fset.Usage = func() {}
	if err := fset.Parse(args); errors.Is(err, pflag.ErrHelp) {
		printHelp(os.Stdout, c)
		return nil, exitOK, false
	} else if err != nil {
		return nil, usageError(c, "%v", err), false
	}
	return fset.Args(), 0, true
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
