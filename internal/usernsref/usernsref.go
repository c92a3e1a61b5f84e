// Package usernsref holds this process's reference to the holder of the
// caller's rootless user namespace (runner/userns.go).
//
// The holder keeps the user and mount namespaces of a user's rootless
// commands, so that the next command can enter them. It must live as long
// as something runs in them — a command, a container's monitor, a FUSE
// daemon — and no longer: holders of interrupted runs stayed forever. So
// each of those processes holds the write end of the holder's FIFO, and
// the holder reads EOF (POLLHUP) once the last one has exited, whichever
// way it ended. A command receives its end across the exec into the
// namespace, named by an environment variable; a process it starts to
// outlive it gets one of its own through Pass. Nothing else inherits it:
// the descriptor is close-on-exec here, so no container process holds it.
package usernsref

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"
)

// Env names the variable that gives the descriptor number of the
// reference a process was started with.
const Env = "UNIONFUSE_USERNS_REF"

// held is this process's reference, nil when it has none.
var held *os.File

func init() {
	s, ok := os.LookupEnv(Env)
	if !ok {
		return
	}
	os.Unsetenv(Env) // what this process starts gets its own through Pass
	fd, err := strconv.Atoi(s)
	if err != nil || fd <= 2 {
		return
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return
	}
	unix.CloseOnExec(fd)
	held = os.NewFile(uintptr(fd), "userns-ref")
}

// Held reports whether this process holds a reference.
func Held() bool { return held != nil }

// Pass gives cmd, which is to outlive this process in the namespace, a
// reference of its own, when this process holds one: appended to its
// ExtraFiles and named in its environment (set cmd.Env first).
func Pass(cmd *exec.Cmd) {
	if held == nil {
		return
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, held)
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", Env, 2+len(cmd.ExtraFiles)))
}

// KeepAcrossExec makes f, a reference, survive this process's exec(2)
// into the namespace and returns the environment entry that names it
// there.
func KeepAcrossExec(f *os.File) (string, error) {
	fd := int(f.Fd())
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s=%d", Env, fd), nil
}
