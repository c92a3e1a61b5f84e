package main

import (
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/builder"
)

var importCmd = &command{
	name:  "import",
	usage: "unionfuse import [--root DIR] [-m MESSAGE] [-c INSTRUCTION]... ROOTFS.tar[.gz|.zst]|- [NAME[:TAG]]",
	help: `Make a one-layer image from a root filesystem tarball, as docker import
does, and print its id. The tarball may be plain, gzip or zstd; '-' reads
standard input. OCI whiteouts (.wh.NAME, .wh..wh..opq) become kernel
overlay whiteouts. Hostile entries are refused with an error naming the
entry, and the store is left as it was: '..' or absolute names, duplicates,
writes through a symbolic link of the archive, hard links to files not in
it, device nodes when not root, overlay-private xattrs, a truncated or
corrupt tarball.`,
	options: optionsOf(importFlags),
	run:     runImport,
}

type importArgs struct {
	storeFlags
	limitFlags
	quiet   bool
	message string
	changes []string
}

func importFlags() (*pflag.FlagSet, *importArgs) {
	a := &importArgs{}
	fset := pflag.NewFlagSet("import", pflag.ContinueOnError)
	a.storeFlags.add(fset)
	a.limitFlags.add(fset)
	fset.BoolVarP(&a.quiet, "quiet", "q", false, "print nothing on success")
	fset.StringVarP(&a.message, "message", "m", "", "the history's comment (default: Imported from SOURCE)")
	fset.StringArrayVarP(&a.changes, "change", "c", nil, "apply the Dockerfile `INSTRUCTION` to the image's config (as commit -c)")
	return fset, a
}

func runImport(cmd *command, args []string) int {
	fset, a := importFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageError(cmd, "want ROOTFS.tar [NAME[:TAG]], got %d arguments", len(pos))
	}
	name := ""
	if len(pos) == 2 {
		name = pos[1]
	}
	var in io.Reader = os.Stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		in = f
	}
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	if err := a.apply(s); err != nil {
		return usageError(cmd, "%v", err)
	}
	var cfg *v1.Config
	if len(a.changes) > 0 {
		cfg = &v1.Config{}
		if err := builder.ApplyChanges(cfg, a.changes); err != nil {
			return fail(err)
		}
	}
	img, err := s.ImportWith(in, name, pos[0], a.message, cfg)
	if err != nil {
		return fail(err)
	}
	if !a.quiet {
		fmt.Println(img.ID)
	}
	return exitOK
}
