package main

import (
	"time"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/internal/daemon"
)

// umountWait bounds how long umount waits for the daemon to exit.
const umountWait = 10 * time.Second

var umountCmd = &command{
	name:  "umount",
	usage: "unionfuse umount [-l] MERGED",
	help: `Unmount the union at MERGED (umount2(2) as root, fusermount3 -u otherwise)
and wait, at most 10 seconds, for the daemon that served it to exit.
Also spelled 'unionfuse unmount'.`,
	aliases: []string{"unmount"},
	host:    true,
	options: optionsOf(umountFlags),
	own:     true,
	run:     runUmount,
}

// umountArgs holds the flags of unionfuse umount.
type umountArgs struct {
	lazy bool
}

// umountFlags returns the flag set of unionfuse umount.
func umountFlags() (*pflag.FlagSet, *umountArgs) {
	a := &umountArgs{}
	fset := pflag.NewFlagSet("umount", pflag.ContinueOnError)
	fset.BoolVarP(&a.lazy, "lazy", "l", false, "detach now even if busy; the daemon exits when the last file is closed")
	return fset, a
}

func runUmount(cmd *command, args []string) int {
	fset, a := umountFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(cmd, "want exactly one MERGED directory, got %d arguments", len(pos))
	}
	merged, err := daemon.ResolveMountpoint(pos[0])
	if err != nil {
		return fail(err)
	}
	// Read the record first: the daemon removes it as it exits.
	rec, recErr := daemon.ReadPid(merged)
	if err := daemon.Unmount(merged, a.lazy); err != nil {
		return fail(err)
	}
	if a.lazy || recErr != nil {
		return exitOK
	}
	if err := daemon.WaitUnmounted(rec, umountWait); err != nil {
		return fail(err)
	}
	return exitOK
}
