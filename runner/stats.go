package runner

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// Stats is what a running container uses at one moment (docker stats):
// from its cgroup's counters, and from /proc where it has no cgroup.
type Stats struct {
	Read time.Time
	// CPU is the CPU time its processes have used since it started.
	CPU time.Duration
	// MemoryUsage is the memory it uses, less the page cache the kernel
	// can drop (docker's figure); MemoryLimit its limit, or the host's
	// memory when it has none.
	MemoryUsage, MemoryLimit uint64
	Pids                     uint64
	NetRx, NetTx             uint64 // bytes on its interfaces but loopback
	BlockRead, BlockWrite    uint64 // bytes
}

// Stats reads a running container's use; a container not running uses
// nothing (a zero Stats with Read set).
func (r *Runner) Stats(c *Container) (Stats, error) {
	st := Stats{Read: time.Now()}
	if !c.Running() || !c.pidIsInit() {
		return st, nil
	}
	st.MemoryLimit = hostMemory()
	st.NetRx, st.NetTx = netBytes(c.State.Pid)
	m := cgroupOf(c)
	if m == nil {
		return procStats(c, st), nil
	}
	cs, err := m.GetStats()
	if err != nil {
		return st, fmt.Errorf("stats of container %s: %w", c.ShortID(), err)
	}
	st.CPU = time.Duration(cs.CpuStats.CpuUsage.TotalUsage)
	mem := cs.MemoryStats
	st.MemoryUsage = mem.Usage.Usage
	// docker subtracts the inactive page cache (v1: total_inactive_file,
	// v2: inactive_file).
	for _, k := range []string{"total_inactive_file", "inactive_file"} {
		if v, ok := mem.Stats[k]; ok {
			if v < st.MemoryUsage {
				st.MemoryUsage -= v
			}
			break
		}
	}
	if l := mem.Usage.Limit; l > 0 && l < st.MemoryLimit {
		st.MemoryLimit = l
	}
	st.Pids = cs.PidsStats.Current
	for _, e := range cs.BlkioStats.IoServiceBytesRecursive {
		switch strings.ToLower(e.Op) {
		case "read":
			st.BlockRead += e.Value
		case "write":
			st.BlockWrite += e.Value
		}
	}
	return st, nil
}

// procStats fills st from /proc/PID/stat of the container's processes:
// CPU time and resident memory.
func procStats(c *Container, st Stats) Stats {
	pids := namespacePids(c)
	st.Pids = uint64(len(pids))
	page := uint64(os.Getpagesize())
	for _, pid := range pids {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 22 {
			continue
		}
		// Fields after the name, from 0: utime 11, stime 12, rss 21 (pages).
		ut, _ := strconv.ParseUint(f[11], 10, 64)
		stime, _ := strconv.ParseUint(f[12], 10, 64)
		rss, _ := strconv.ParseUint(f[21], 10, 64)
		st.CPU += time.Duration(ut+stime) * time.Second / 100 // USER_HZ
		st.MemoryUsage += rss * page
	}
	return st
}

// hostMemory is the host's memory in bytes.
func hostMemory() uint64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return math.MaxUint64
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}

// netBytes sums the bytes received and sent on the interfaces of pid's
// network namespace but loopback.
func netBytes(pid int) (rx, tx uint64) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "net", "dev"))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) < 9 {
			continue
		}
		r, _ := strconv.ParseUint(fields[0], 10, 64)
		t, _ := strconv.ParseUint(fields[8], 10, 64)
		rx += r
		tx += t
	}
	return rx, tx
}

// Pids returns the host's pids of a running container's processes, in
// order: its cgroup's, or those of its pid namespace.
func (r *Runner) Pids(c *Container) ([]int, error) {
	if !c.Running() || !c.pidIsInit() {
		return nil, fmt.Errorf("container %s is not running", c.ShortID())
	}
	var pids []int
	if m := cgroupOf(c); m != nil {
		// Not m.GetAllPids: on v1 it reads the devices controller, which
		// the container's cgroup does not join.
		p, err := cgroups.GetAllPids(m.Path("pids"))
		if err != nil {
			return nil, err
		}
		pids = p
	} else {
		pids = namespacePids(c)
	}
	sort.Ints(pids)
	return pids, nil
}
