package runner

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
)

// pause stops every process of a running container, as docker commit
// pauses a container by default, so that its layer holds still while it
// is read: a process swapping a directory for a symbolic link could
// otherwise send a walk of the layer elsewhere. resume continues them.
// The container's freezer cgroup stops them where it has one; else (no
// cgroup without root) SIGSTOP goes to each process in its pid namespace.
func pause(c *Container) (resume func()) {
	if !c.Running() || !c.pidIsInit() {
		return func() {}
	}
	if m := cgroupOf(c); m != nil && m.Freeze(cgroups.Frozen) == nil {
		return func() { m.Freeze(cgroups.Thawed) }
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
			if syscall.Kill(pid, syscall.SIGSTOP) == nil {
				stopped[pid] = true
				found = true
			}
		}
		if !found {
			break
		}
	}
	waitStopped(stopped)
	return func() {
		for pid := range stopped {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}
}

// namespacePids returns the host's pids of the processes in a running
// container's pid namespace.
func namespacePids(c *Container) []int {
	ns, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(c.State.Pid), "ns", "pid"))
	if err != nil {
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
