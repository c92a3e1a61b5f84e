package runner

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
)

// Stopping every process of a running container, and continuing them:
// the container's freezer cgroup where it has one (as docker pause,
// unseen by the processes), else SIGSTOP to each process of its pid
// namespace (without root there is no cgroup on cgroup v1, nor without a
// delegated v2 subtree), which a process's parent can see (waitpid
// WUNTRACED) but not block. The FUSE server of the container's root is a
// daemon outside both (Mount), so a stopped container never stops its own
// file system: its files stay readable (cp, commit, diff).

// freeze stops every process of running container c. thaw continues what
// freeze stopped (and, after SIGSTOP, nothing else). It fails, with a
// reason, when c has no freezer cgroup and no process could be stopped.
func freeze(c *Container) (thaw func(), err error) {
	if m := cgroupOf(c); m != nil {
		if err := m.Freeze(cgroups.Frozen); err == nil {
			return func() { m.Freeze(cgroups.Thawed) }, nil
		}
	}
	stopped := map[int]bool{}
	// A process may fork while the others are stopped: look again until
	// a pass finds nothing new.
	for pass := 0; pass < 5; pass++ {
		found := false
		for _, pid := range namespacePids(c) {
			if stopped[pid] {
				continue
			}
			if kerr := syscall.Kill(pid, syscall.SIGSTOP); kerr == nil {
				stopped[pid] = true
				found = true
			} else if err == nil && kerr != syscall.ESRCH {
				err = kerr
			}
		}
		if !found {
			break
		}
	}
	cont := func() {
		for pid := range stopped {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	switch {
	case len(stopped) == 0 && err == nil:
		return func() {}, errors.New("it has no freezer cgroup and its processes cannot be seen")
	case err != nil:
		// Some could not be stopped: a partial pause is none.
		cont()
		return func() {}, fmt.Errorf("it has no freezer cgroup and SIGSTOP was refused: %w", err)
	}
	waitStopped(stopped)
	return cont, nil
}

// thawAll continues every process of running container c, stopped by a
// freeze of another process (unionfuse pause): the freezer cgroup is
// thawed where it is frozen, else SIGCONT goes to each process of its pid
// namespace.
func thawAll(c *Container) error {
	if m := cgroupOf(c); m != nil {
		if st, err := m.GetFreezerState(); err == nil && st != cgroups.Thawed {
			return m.Freeze(cgroups.Thawed)
		}
	}
	var err error
	for _, pid := range namespacePids(c) {
		if kerr := syscall.Kill(pid, syscall.SIGCONT); kerr != nil && kerr != syscall.ESRCH && err == nil {
			err = kerr
		}
	}
	return err
}

// holdStill stops a running container while its layer is read, as docker
// commit pauses a container by default: a process swapping a directory
// for a symbolic link could otherwise send a walk of the layer elsewhere.
// resume continues it. A container that is not running, or is paused
// already, is left as it is; one that cannot be stopped is read anyway.
func holdStill(c *Container) (resume func()) {
	if !c.Running() || c.Paused() || !c.pidIsInit() {
		return func() {}
	}
	thaw, _ := freeze(c)
	return thaw
}

// namespacePids returns the host's pids of the processes in a running
// container's pid namespace (none should that be this process's own).
func namespacePids(c *Container) []int {
	ns, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(c.State.Pid), "ns", "pid"))
	if err != nil {
		return nil
	}
	if own, err := os.Readlink("/proc/self/ns/pid"); err != nil || own == ns {
		return nil
	}
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "pid")); err == nil && l == ns {
			out = append(out, pid)
		}
	}
	return out
}

// waitStopped waits, at most a second, until each of pids has stopped or
// exited: kill(2) returns before the signal takes effect, and a process
// still running on another CPU could change the layer being read.
func waitStopped(pids map[int]bool) {
	deadline := time.Now().Add(time.Second)
	for pid := range pids {
		for !isStopped(pid) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
}

// isStopped says whether pid is stopped (state T or t in /proc/PID/stat)
// or gone.
func isStopped(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses and
	// may itself hold ") ".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return true
	}
	switch b[i+2] {
	case 'T', 't', 'Z', 'X':
		return true
	}
	return false
}
