package main

import (
	"fmt"
	"os"

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
image is visible, unless -f or -d; unmount with 'unionfuse umount MERGED'.
While the image is mounted, rmi and system prune leave it alone.`,
	options: optionsOf(mountImageFlags),
	host:    true,
	own:     true,
	run:     runMountImage,
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

func runMountImage(cmd *command, args []string) int {
	fset, a := mountImageFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return usageError(cmd, "want IMAGE MERGED, got %d arguments", len(pos))
	}
	merged, err := daemon.ResolveMountpoint(pos[1])
	if err != nil {
		return fail(err)
	}
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	// The store records the mount (this process first, then the daemon)
	// so that rmi and system prune leave the image alone while it is
	// mounted.
	img, err := s.MountImage(pos[0], merged)
	if err != nil {
		return fail(err)
	}
	defer s.Unmounted(merged)
	cfg := fs.Config{Lowers: s.LayerDirs(img), FsName: "unionfuse:" + img.ID.Short(), Debug: a.debug, UserXattr: s.UserXattr()}
	if err := cfg.Validate(merged); err != nil {
		return fail(err)
	}
	if a.foreground || a.debug {
		return serveForeground(merged, cfg, &mountArgs{LogFile: a.logFile})
	}
	if err := daemon.Start(daemon.Spec{Merged: merged, Config: cfg, LogFile: a.logFile}); err != nil {
		return fail(err)
	}
	rec, err := daemon.ReadPid(merged)
	if err == nil {
		err = s.HandOverMount(merged, rec.PID, rec.Start)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "unionfuse: warning: %v: rmi will not know that %s is mounted\n", err, img.ID.Short())
	}
	return exitOK
}
