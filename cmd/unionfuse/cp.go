package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/go-archive"
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/runner"
)

var cpCmd = &command{
	name: "cp",
	usage: `unionfuse cp [-a] [-L] CONTAINER:SRC_PATH DEST_PATH|-
       unionfuse cp [-a] [-L] SRC_PATH|- CONTAINER:DEST_PATH`,
	help: `Copy files between a container and the host, as docker cp, the container
running or not (one that is not is mounted for the copy; its volumes are
seen too). With - as DEST_PATH the files are written to stdout as a tar
stream; with - as SRC_PATH a tar stream is read from stdin and unpacked
into the directory DEST_PATH.

docker's rules: SRC_PATH a file copies to DEST_PATH, or into it when it
is a directory (DEST_PATH ending in / must be one); SRC_PATH a directory
copies as DEST_PATH when that does not exist, into it as a subdirectory
when it does, and SRC_PATH/. copies the directory's content instead.
Paths in the container are resolved inside it: its symbolic links never
lead to the host's files (an absolute link is the container's own path).
Files copied into the container belong to its root unless -a, which
keeps the owners of the source; files copied out belong to the caller.`,
	options: optionsOf(cpFlags),
	run:     runCp,
}

type cpArgs struct {
	containerArgs
	archive, followLink, quiet bool
}

func cpFlags() (*pflag.FlagSet, *cpArgs) {
	a := &cpArgs{}
	fset := newContainerFlags("cp", &a.containerArgs)
	fset.BoolVarP(&a.archive, "archive", "a", false, "archive mode: keep the owners (uid/gid) of the source")
	fset.BoolVarP(&a.followLink, "follow-link", "L", false, "follow a symbolic link SRC_PATH")
	fset.BoolVarP(&a.quiet, "quiet", "q", false, "print no progress (there is none)")
	return fset, a
}

// cpEnd is one side of a cp: a container's path, or the host's.
type cpEnd struct {
	container, path string
}

// splitCpArg splits CONTAINER:PATH as docker: a path that starts with /
// or . is the host's, whatever colons it holds.
func splitCpArg(arg string) cpEnd {
	if filepath.IsAbs(arg) || strings.HasPrefix(arg, ".") {
		return cpEnd{path: arg}
	}
	c, p, ok := strings.Cut(arg, ":")
	if !ok || c == "" {
		return cpEnd{path: arg}
	}
	return cpEnd{container: c, path: p}
}

func runCp(cmd *command, args []string) int {
	fset, a := cpFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return usageError(cmd, "want SRC DEST, one of them CONTAINER:PATH")
	}
	src, dst := splitCpArg(pos[0]), splitCpArg(pos[1])
	switch {
	case src.container != "" && dst.container != "":
		return fail(errors.New("copying between containers is not supported"))
	case src.container == "" && dst.container == "":
		return fail(errors.New("must specify at least one container source"))
	case src.path == "" || dst.path == "":
		return fail(errors.New("filepath cannot be empty"))
	}
	name := src.container + dst.container
	return a.withRunner(func(r *runner.Runner) int {
		c, err := r.Get(name)
		if err != nil {
			return fail(err)
		}
		root, err := r.OpenRoot(c)
		if err != nil {
			return fail(err)
		}
		defer root.Close()
		if src.container != "" {
			err = copyFromContainer(root, src.path, dst.path, a.followLink)
		} else {
			err = copyToContainer(root, src.path, dst.path, a.followLink, a.archive)
		}
		if err != nil {
			return fail(err)
		}
		return exitOK
	})
}

// copyFromContainer is docker cp CONTAINER:SRC DEST (its CLI's side).
func copyFromContainer(root *runner.ContainerRoot, srcPath, dstPath string, followLink bool) error {
	var rebaseName string
	if followLink {
		st, err := root.Stat(srcPath)
		if err == nil && st.Mode&os.ModeSymlink != 0 {
			srcPath, rebaseName = archive.GetRebaseName(srcPath, st.LinkTarget)
		}
	}
	st, err := root.Stat(srcPath)
	if err != nil {
		return err
	}
	if dstPath == "-" {
		return root.Archive(srcPath, os.Stdout)
	}
	if dstPath, err = absLocal(dstPath); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(root.Archive(srcPath, pw)) }()
	defer pr.Close()
	srcInfo := archive.CopyInfo{Path: srcPath, Exists: true, IsDir: st.Mode.IsDir(), RebaseName: rebaseName}
	var content io.Reader = pr
	if rebaseName != "" {
		_, srcBase := archive.SplitPathDirEntry(srcPath)
		content = archive.RebaseArchiveEntries(pr, srcBase, rebaseName)
	}
	return archive.CopyTo(content, srcInfo, dstPath)
}

// copyToContainer is docker cp SRC CONTAINER:DEST (its CLI's side).
func copyToContainer(root *runner.ContainerRoot, srcPath, dstPath string, followLink, keepOwners bool) error {
	dstInfo := archive.CopyInfo{Path: dstPath}
	st, err := root.Stat(dstPath)
	if err == nil && st.Mode&os.ModeSymlink != 0 {
		// A link as the destination: its target is.
		dstInfo.Path = st.LinkTarget
		st, err = root.Stat(dstInfo.Path)
	}
	if err == nil {
		if !st.Mode.IsDir() && !st.Mode.IsRegular() {
			return fmt.Errorf("destination %q must be a directory or a regular file", dstPath)
		}
		dstInfo.Exists, dstInfo.IsDir = true, st.Mode.IsDir()
	}
	if srcPath == "-" {
		if !dstInfo.IsDir {
			return fmt.Errorf("destination %q must be a directory", dstPath)
		}
		return root.Extract(dstInfo.Path, os.Stdin, keepOwners)
	}
	if srcPath, err = absLocal(srcPath); err != nil {
		return err
	}
	srcInfo, err := archive.CopyInfoSourcePath(srcPath, followLink)
	if err != nil {
		return err
	}
	srcArchive, err := archive.TarResource(srcInfo)
	if err != nil {
		return err
	}
	defer srcArchive.Close()
	dstDir, content, err := archive.PrepareArchiveCopy(srcArchive, srcInfo, dstInfo)
	if err != nil {
		return err
	}
	defer content.Close()
	return root.Extract(dstDir, content, keepOwners)
}

// absLocal makes a host path absolute, keeping a trailing / or /.
func absLocal(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return archive.PreserveTrailingDotOrSeparator(abs, p), nil
}
