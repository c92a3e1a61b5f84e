package main

import (
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
)

var saveCmd = &command{
	name:  "save",
	usage: "unionfuse save [--root DIR] [-o FILE|DIR/] [--format docker-archive|oci] IMAGE...",
	help: `Save images to an archive, as docker save does: a docker-archive tarball
(docker load's format) or, with --format oci, an OCI image layout as a
tarball, or as a directory when FILE is a directory or ends in '/'. An
image given by name is saved under that name, one given by id without a
name. The blobs are those the store holds: 'unionfuse load', docker load
and skopeo read back the same image ids and DiffIDs, and in the OCI format
the same manifest digests. Without -o the tarball goes to standard output
(not to a terminal). FILE is written under a temporary name and renamed
when complete; as docker, an existing FILE must be a regular file.`,
	options: optionsOf(saveFlags),
	run:     runSave,
}

type saveArgs struct {
	storeFlags
	output, format string
}

func saveFlags() (*pflag.FlagSet, *saveArgs) {
	a := &saveArgs{}
	fset := pflag.NewFlagSet("save", pflag.ContinueOnError)
	a.add(fset)
	fset.StringVarP(&a.output, "output", "o", "", "write to `FILE` (or an OCI layout directory) instead of standard output")
	fset.StringVar(&a.format, "format", string(cowcache.DockerArchive), "docker-archive or oci")
	return fset, a
}

func runSave(cmd *command, args []string) int {
	fset, a := saveFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return usageError(cmd, "want at least one IMAGE")
	}
	format, err := cowcache.ParseArchiveFormat(a.format)
	if err != nil {
		return usageError(cmd, "%v", err)
	}
	if (a.output == "" || a.output == "-") && isTerminal(os.Stdout) {
		return usageError(cmd, "refusing to write an archive to a terminal: give -o FILE or redirect")
	}
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	switch {
	case a.output == "" || a.output == "-":
		err = s.Save(os.Stdout, pos, format)
	case format == cowcache.OCIArchive && isDirTarget(a.output):
		err = s.SaveLayout(a.output, pos)
	default:
		err = s.SaveFile(a.output, pos, format)
	}
	if err != nil {
		return fail(err)
	}
	return exitOK
}

// isDirTarget reports whether the output names a directory.
func isDirTarget(p string) bool {
	if strings.HasSuffix(p, "/") {
		return true
	}
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
