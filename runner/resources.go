package runner

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
)

// Resources are a container's cgroup limits: docker run's --memory,
// --memory-swap, --cpus, --cpu-shares, --cpuset-cpus, --pids-limit and
// --oom-kill-disable. A zero field sets no limit.
type Resources struct {
	Memory int64 `json:",omitempty"` // bytes
	// MemorySwap is memory plus swap, in bytes, as docker's: -1 is
	// unlimited swap, 0 twice Memory.
	MemorySwap     int64  `json:",omitempty"`
	NanoCPUs       int64  `json:",omitempty"` // --cpus × 10⁹
	CPUShares      int64  `json:",omitempty"` // relative weight (1024 = one share)
	CpusetCpus     string `json:",omitempty"` // "0-2,4"
	PidsLimit      int64  `json:",omitempty"` // -1 = unlimited
	OomKillDisable bool   `json:",omitempty"`
}

// cpuPeriod is the CFS period --cpus is turned into a quota of, docker's.
const cpuPeriod = 100000

// minMemory is the least --memory docker accepts.
const minMemory = 6 * 1024 * 1024

// Limited reports whether r asks for any limit.
func (r Resources) Limited() bool { return r != Resources{} }

// check refuses what docker refuses.
func (r Resources) check() error {
	if r.Memory != 0 && r.Memory < minMemory {
		return errors.New("minimum memory limit allowed is 6MB")
	}
	if r.MemorySwap > 0 && r.Memory == 0 {
		return errors.New("you should always set the memory limit when using the memory-swap limit")
	}
	if r.MemorySwap > 0 && r.MemorySwap < r.Memory {
		return errors.New("minimum memoryswap limit should be larger than memory limit, see usage")
	}
	if r.NanoCPUs < 0 {
		return errors.New("range of CPUs is from 0.01 to the number of CPUs available")
	}
	if r.CPUShares < 0 {
		return errors.New("invalid CPU shares: it must be positive")
	}
	if r.CpusetCpus != "" {
		if _, err := parseCPUList(r.CpusetCpus); err != nil {
			return fmt.Errorf("invalid value %s for cpuset cpus", r.CpusetCpus)
		}
	}
	return nil
}

// Update returns r with the fields of u that are set (non-zero) replacing
// r's, as docker update (which leaves --oom-kill-disable as it was).
func (r Resources) Update(u Resources) Resources {
	if u.Memory != 0 {
		r.Memory = u.Memory
	}
	if u.MemorySwap != 0 {
		r.MemorySwap = u.MemorySwap
	}
	if u.NanoCPUs != 0 {
		r.NanoCPUs = u.NanoCPUs
	}
	if u.CPUShares != 0 {
		r.CPUShares = u.CPUShares
	}
	if u.CpusetCpus != "" {
		r.CpusetCpus = u.CpusetCpus
	}
	if u.PidsLimit != 0 {
		r.PidsLimit = u.PidsLimit
	}
	return r
}

// cgroupResources is r in the cgroup library's terms. Device rules are
// not set (SkipDevices): a container reaches the devices its /dev holds.
func (r Resources) cgroupResources() *cgroups.Resources {
	res := &cgroups.Resources{
		Memory:         r.Memory,
		MemorySwap:     r.MemorySwap,
		CpuShares:      uint64(r.CPUShares),
		CpusetCpus:     r.CpusetCpus,
		OomKillDisable: r.OomKillDisable,
		SkipDevices:    true,
	}
	if r.Memory > 0 && r.MemorySwap == 0 {
		res.MemorySwap = 2 * r.Memory
		if !swapAccounted() {
			res.MemorySwap = 0
		}
	}
	if r.NanoCPUs > 0 {
		res.CpuPeriod = cpuPeriod
		res.CpuQuota = r.NanoCPUs * cpuPeriod / 1e9
	}
	if r.PidsLimit != 0 {
		limit := r.PidsLimit
		if limit < 0 {
			limit = -1 // max
		}
		res.PidsLimit = &limit
	}
	return res
}

// swapAccounted reports whether the memory controller limits swap (v1:
// memory.memsw.* exists, which needs swapaccount=1; v2: always).
func swapAccounted() bool {
	if cgroups.IsCgroup2UnifiedMode() {
		return true
	}
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return err == nil
}

// parseCPUList parses a cpuset list ("0-2,4") into its CPUs.
func parseCPUList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("invalid cpu %q", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("invalid cpu range %q", part)
			}
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}
