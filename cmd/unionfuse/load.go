package main

import (
	"fmt"

	"github.com/dustin/go-humanize"
	"os"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
)

var loadCmd = &command{
	name:  "load",
	usage: "unionfuse load [--root DIR] [-q] [-i FILE|DIR]",
	help: `Load images from an image archive, as docker load does, and print what was
loaded. The archive is a docker-archive tarball (docker save's format), or
an OCI image layout as a tarball or a directory; without -i, a tarball is
read from standard input. Every layer is kept, plain, gzip or zstd, and
every blob is checked against its digest, so that 'unionfuse save' writes
back the same image ids, DiffIDs and (OCI) manifest digests. An image
index (several platforms) loads its linux image for this machine.`,
}

func init() {
	loadCmd.run = runLoad
	loadCmd.options = func() string { return flagHelp(loadFlags) }
}

type loadArgs struct {
	storeFlags
	limitFlags
	input string
	quiet bool
}

func loadFlags() (*pflag.FlagSet, *loadArgs) {
	a := &loadArgs{}
	fset := pflag.NewFlagSet("load", pflag.ContinueOnError)
	a.storeFlags.add(fset)
	a.limitFlags.add(fset)
	fset.StringVarP(&a.input, "input", "i", "", "read the archive from `FILE` or directory instead of standard input")
	fset.BoolVarP(&a.quiet, "quiet", "q", false, "print nothing on success")
	return fset, a
}

func runLoad(args []string) int {
	fset, a := loadFlags()
	pos, code, ok := parseStoreCmd(loadCmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(loadCmd, "unexpected argument %q (the archive is given with -i)", pos[0])
	}
	if a.input == "" && isTerminal(os.Stdin) {
		return usageError(loadCmd, "give the archive with -i FILE, or on standard input")
	}
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	if err := a.apply(s); err != nil {
		return usageError(loadCmd, "%v", err)
	}
	var images []cowcache.Image
	if a.input == "" || a.input == "-" {
		images, err = s.LoadReader(os.Stdin, "standard input")
	} else {
		images, err = s.Load(a.input)
	}
	if !a.quiet {
		for _, img := range images {
			if len(img.Names) == 0 {
				fmt.Printf("Loaded image ID: %s\n", img.ID)
			}
			for _, n := range img.Names {
				fmt.Printf("Loaded image: %s\n", n)
			}
		}
	}
	if err != nil {
		return fail(err)
	}
	return exitOK
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

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
