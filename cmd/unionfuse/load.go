package main

import (
	"fmt"
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
	options: optionsOf(loadFlags),
	run:     runLoad,
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

func runLoad(cmd *command, args []string) int {
	fset, a := loadFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(cmd, "unexpected argument %q (the archive is given with -i)", pos[0])
	}
	if a.input == "" && isTerminal(os.Stdin) {
		return usageError(cmd, "give the archive with -i FILE, or on standard input")
	}
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	if err := a.apply(s); err != nil {
		return usageError(cmd, "%v", err)
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
