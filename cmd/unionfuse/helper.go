package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
)

// runHelper runs unionfuse as mount(8)'s helper for the type
// fuse.unionfuse (installed as /sbin/mount.fuse.unionfuse), which mount(8)
// runs as
//
//	mount.fuse.unionfuse SOURCE MERGED [-f] [-n] [-s] [-v] [-o OPTS] [-t TYPE]
//
// Here -f means "fake" (check, do not mount), not foreground. As root the
// union gets mount(8)'s defaults dev and suid unless -o says nodev/nosuid.
func runHelper(args []string) int {
	a := &mountArgs{}
	var fake, ignore bool
	var fstype, ns string
	fset := pflag.NewFlagSet("mount.fuse.unionfuse", pflag.ContinueOnError)
	fset.StringArrayVarP(&a.Options, "options", "o", nil, "mount options")
	fset.BoolVarP(&fake, "fake", "f", false, "check only, do not mount")
	fset.BoolVarP(&ignore, "no-mtab", "n", false, "ignored")
	fset.BoolVarP(&ignore, "sloppy", "s", false, "ignored")
	fset.BoolVarP(&ignore, "verbose", "v", false, "ignored")
	fset.StringVarP(&fstype, "types", "t", "", "ignored")
	fset.StringVarP(&ns, "namespace", "N", "", "not supported")
	// -h shows mount's help with the flags of the helper.
	helper := *mountCmd
	helper.options = func() string { return optionsHelp(fset) }
	pos, code, ok := parseFlags(&helper, fset, args)
	if !ok {
		return code
	}
	if ns != "" {
		fmt.Fprintln(os.Stderr, "unionfuse: mount helper: -N (mount namespace) is not supported")
		return exitUsage
	}
	if len(pos) != 2 {
		fmt.Fprintf(os.Stderr, "unionfuse: mount helper: want SOURCE MERGED, got %d arguments\n", len(pos))
		return exitUsage
	}
	if os.Geteuid() == 0 {
		// As mount.fuse3 does for root: mount(8)'s defaults, which the
		// options given may still override (the last of a pair wins).
		a.Options = append([]string{"dev,suid"}, a.Options...)
	}
	return mountUnion(mountCmd, a, pos, fake)
}
