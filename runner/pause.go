package runner

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// pause stops every process of a running container (SIGSTOP to each
// process in its pid namespace), as docker commit pauses a container by
// default, so that its layer holds still while it is read: a process
// swapping a directory for a symbolic link could otherwise send a walk
// of the layer elsewhere. resume continues them.
func pause(c *Container) (resume func()) {
	if !c.Running() || !c.pidIsInit() {
		return func() {}
	}
	ns, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(c.State.Pid), "ns", "pid"))
	if err != nil {
		return func() {}
	}
	stopped := map[int]bool{}
	// A process may fork while the others are stopped: look again until
	// a pass finds nothing new.
	for pass := 0; pass < 5; pass++ {
		found := false
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || stopped[pid] {
				continue
			}
			if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "pid")); err != nil || l != ns {
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
	return func() {
		for pid := range stopped {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}
}
