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
// reason, when c has no freezer cgroup and not every process could be
// stopped. The commands exec started are in c's pid namespace but not in
// its cgroup: they get SIGSTOP, also when the cgroup is frozen.
func freeze(c *Container) (thaw func(), err error) {
	var inCgroup map[int]bool
	m := cgroupOf(c)
	if m != nil && m.Freeze(cgroups.Frozen) == nil {
		inCgroup = cgroupPids(m)
	} else {
		m = nil
	}
	stopped := map[int]bool{}
	// A process may fork while the others are stopped: look again until
	// a pass finds nothing new.
	for pass := 0; pass < 5; pass++ {
		found := false
		for _, pid := range namespacePids(c) {
			if stopped[pid] || inCgroup[pid] {
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
	waiters := execWaiters(stopped)
	thaw = func() {
		if m != nil {
			m.Freeze(cgroups.Thawed)
		}
		continuePids(stopped)
		continuePids(waiters)
	}
	switch {
	case m == nil && len(stopped) == 0 && err == nil:
		return func() {}, errors.New("it has no freezer cgroup and its processes cannot be seen")
	case err != nil:
		// Some could not be stopped: a partial pause is none.
		thaw()
		if m != nil {
			return func() {}, fmt.Errorf("SIGSTOP to a process exec started was refused: %w", err)
		}
		return func() {}, fmt.Errorf("it has no freezer cgroup and SIGSTOP was refused: %w", err)
	}
	// The waiters must have stopped before they are continued, or they
	// would stop after and stay stopped.
	for pid := range waiters {
		stopped[pid] = true
	}
	waitStopped(stopped)
	for pid := range waiters {
		delete(stopped, pid)
	}
	return thaw, nil
}

// thawAll continues every process of running container c, stopped by a
// freeze of another process (unionfuse pause): the freezer cgroup is
// thawed where it is frozen, and SIGCONT goes to each process of its pid
// namespace outside it, and to the nsenter processes of exec waiting for
// them.
func thawAll(c *Container) error {
	var inCgroup map[int]bool
	if m := cgroupOf(c); m != nil {
		if st, err := m.GetFreezerState(); err == nil && st != cgroups.Thawed {
			if err := m.Freeze(cgroups.Thawed); err != nil {
				return err
			}
			inCgroup = cgroupPids(m)
		}
	}
	var err error
	for _, pid := range namespacePids(c) {
		if inCgroup[pid] {
			continue
		}
		if kerr := syscall.Kill(pid, syscall.SIGCONT); kerr != nil && kerr != syscall.ESRCH && err == nil {
			err = kerr
		}
	}
	// After the others: the namespace's processes may be gone (thawed
	// after SIGKILL), their waiters not.
	continuePids(stoppedExecs(c))
	return err
}

// cgroupPids returns the set of the processes in m's cgroup, read from
// its freezer (v1) or unified (v2) directory: the library's GetAllPids
// reads v1's devices directory, which the container's cgroup has not.
func cgroupPids(m cgroups.Manager) map[int]bool {
	dir := m.Path("freezer")
	if dir == "" {
		dir = m.Path("")
	}
	pids, _ := cgroups.GetAllPids(dir)
	set := make(map[int]bool, len(pids))
	for _, pid := range pids {
		set[pid] = true
	}
	return set
}

// continuePids sends SIGCONT to each of pids.
func continuePids(pids map[int]bool) {
	for pid := range pids {
		syscall.Kill(pid, syscall.SIGCONT)
	}
}

// The command exec runs is a child of nsenter(1), on the host, which
// waits for it with WUNTRACED: when the command stops, nsenter stops
// itself, and continues the command once it is itself continued
// (util-linux's continue_as_child). Left stopped, it would never see the
// command end, and exec would wait forever: each is continued with the
// container.

// execWaiters returns the nsenter processes that are the parents of
// stopped.
func execWaiters(stopped map[int]bool) map[int]bool {
	out := map[int]bool{}
	for pid := range stopped {
		if ppid := parentOf(pid); ppid > 0 && commOf(ppid) == "nsenter" {
			out[ppid] = true
		}
	}
	return out
}

// stoppedExecs returns the stopped nsenter processes that joined
// container c (nsenter --target PID).
func stoppedExecs(c *Container) map[int]bool {
	out := map[int]bool{}
	target := []byte("\x00--target\x00" + strconv.Itoa(c.State.Pid) + "\x00")
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || commOf(pid) != "nsenter" {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if bytes.Contains(cmdline, target) && isStopped(pid) {
			out[pid] = true
		}
	}
	return out
}

// commOf returns the command name of pid ("" when gone).
func commOf(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	return string(bytes.TrimSuffix(b, []byte("\n")))
}

// parentOf returns the parent pid of pid (0 when gone).
func parentOf(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// After the command name (which may hold ") "): " STATE PPID ".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(string(f[1]))
	return ppid
}

// holdStill stops a running container while its layer is read, as docker
// commit pauses a container by default: a process swapping a directory
// for a symbolic link could otherwise send a walk of the layer elsewhere.
// What the kernel still holds of the container's writes is then written
// to the layer (flushRootfs). resume continues it. A container that is
// not running, or is paused already, is left as it is; one that cannot be
// stopped is read anyway.
func holdStill(c *Container) (resume func()) {
	if !c.Running() {
		return func() {}
	}
	resume = func() {}
	if !c.Paused() && c.pidIsInit() {
		resume, _ = freeze(c)
	}
	flushRootfs(c)
	return resume
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
