package runner

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// reapAs1 is the container's init with --init (docker's docker-init,
// tini): instead of exec'ing the command it starts it as its child and
// stays pid 1, passing on every signal it receives to it and reaping
// every process that ends in the container (orphans are re-parented to
// pid 1, and a command that is no init leaves them as zombies). It exits
// with the command's status when the command ends; the kernel then ends
// the rest of the pid namespace.
func reapAs1(path string, args, env []string, fail func(int, string, ...any) int) int {
	signals := make(chan os.Signal, 32)
	signal.Notify(signals) // every signal: pid 1 gets only those it handles
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2}, // and the session and terminal (-t)
	})
	if err != nil {
		return fail(ExitCannotInvoke, "exec %q: %v", args[0], err)
	}
	// The command runs: EOF on errFD (close-on-exec, but this init
	// execs nothing) tells the monitor. /dev/null takes the descriptor's
	// place, which runInit's *os.File still names.
	if null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
		unix.Dup3(null, errFD, unix.O_CLOEXEC)
		unix.Close(null)
	}
	go func() {
		for sig := range signals {
			switch sig {
			case syscall.SIGCHLD, syscall.SIGURG: // ours: reaped below, the Go runtime's
			default:
				syscall.Kill(pid, sig.(syscall.Signal))
			}
		}
	}()
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return ExitUnionfuseFailed // no child left: cannot happen while the command runs
		}
		if got != pid {
			continue // an orphan, reaped
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}
