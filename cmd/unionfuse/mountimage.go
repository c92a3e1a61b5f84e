package main

import (
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/fs"
	"github.com/unionfuse/unionfuse/internal/daemon"
)

var mountImageCmd = &command{
	name:  "mount-image",
	usage: "unionfuse mount-image [-f] [-d] [--log FILE] IMAGE MERGED",
	help: `Mount the layers of IMAGE read-only at MERGED: the union of the image's
layer directories, top first, served by unionfuse (every write fails with
EROFS). Like 'unionfuse mount' it starts a daemon and returns once the
image is visible, unless -f or -d; unmount with 'unionfuse umount MERGED'.`,
}

func init() {
	mountImageCmd.run = runMountImage
	mountImageCmd.help += flagHelp(mountImageFlags)
}

type mountImageArgs struct {
	storeFlags
	foreground, debug bool
	logFile           string
}

func mountImageFlags() (*pflag.FlagSet, *mountImageArgs) {
	a := &mountImageArgs{}
	fset := pflag.NewFlagSet("mount-image", pflag.ContinueOnError)
	a.add(fset)
	fset.BoolVarP(&a.foreground, "foreground", "f", false, "stay in the foreground, log to stderr")
	fset.BoolVarP(&a.debug, "debug", "d", false, "log every FUSE operation (implies -f)")
	fset.StringVar(&a.logFile, "log", "", "log to `FILE` instead of syslog or "+daemon.DefaultLogFile())
	return fset, a
}

func runMountImage(args []string) int {
	fset, a := mountImageFlags()
	pos, code, ok := parseStoreCmd(mountImageCmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return usageError(mountImageCmd, "want IMAGE MERGED, got %d arguments", len(pos))
	}
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	img, err := s.Image(pos[0])
	s.Close()
	if err != nil {
		return fail(err)
	}
	cfg := fs.Config{Lowers: s.LayerDirs(img), FsName: "unionfuse:" + img.ID.Short(), Debug: a.debug}
	merged := pos[1]
	if err := cfg.Validate(merged); err != nil {
		return fail(err)
	}
	if !a.foreground && !a.debug {
		if err := daemon.Start(daemon.Spec{Merged: merged, Config: cfg, LogFile: a.logFile}); err != nil {
			return fail(err)
		}
		return exitOK
	}
	return serveForeground(merged, cfg, a.logFile, "")
}
