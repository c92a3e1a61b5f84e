package main

import (
	"fmt"
	"strconv"

	units "github.com/docker/go-units"
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/runner"
)

// resourceFlags are the cgroup limits of run, create and update, docker's
// spelling.
type resourceFlags struct {
	memory, memorySwap, cpus, cpusetCpus string
	cpuShares, pidsLimit                 int64
	oomKillDisable                       bool
}

func (rf *resourceFlags) add(fset *pflag.FlagSet, update bool) {
	fset.StringVarP(&rf.memory, "memory", "m", "", "memory limit (`BYTES`: 64m, 1g)")
	fset.StringVar(&rf.memorySwap, "memory-swap", "", "memory plus swap limit (`BYTES`; -1: unlimited swap)")
	fset.StringVar(&rf.cpus, "cpus", "", "number of `CPUS` (0.5: half of one)")
	fset.Int64VarP(&rf.cpuShares, "cpu-shares", "c", 0, "CPU `SHARES` (relative weight)")
	fset.StringVar(&rf.cpusetCpus, "cpuset-cpus", "", "`CPUS` the container may run on (0-3, 0,1)")
	fset.Int64Var(&rf.pidsLimit, "pids-limit", 0, "most `PROCESSES` at once (-1: unlimited)")
	if !update {
		fset.BoolVar(&rf.oomKillDisable, "oom-kill-disable", false, "never OOM-kill the container's processes (cgroup v1)")
	}
}

// resources are the limits the flags ask for.
func (rf *resourceFlags) resources() (runner.Resources, error) {
	r := runner.Resources{CPUShares: rf.cpuShares, CpusetCpus: rf.cpusetCpus, PidsLimit: rf.pidsLimit, OomKillDisable: rf.oomKillDisable}
	var err error
	if rf.memory != "" {
		if r.Memory, err = units.RAMInBytes(rf.memory); err != nil {
			return r, fmt.Errorf("invalid argument %q for \"-m, --memory\" flag: %w", rf.memory, err)
		}
	}
	switch rf.memorySwap {
	case "":
	case "-1":
		r.MemorySwap = -1
	default:
		if r.MemorySwap, err = units.RAMInBytes(rf.memorySwap); err != nil {
			return r, fmt.Errorf("invalid argument %q for \"--memory-swap\" flag: %w", rf.memorySwap, err)
		}
	}
	if rf.cpus != "" {
		f, err := strconv.ParseFloat(rf.cpus, 64)
		if err != nil || f < 0 {
			return r, fmt.Errorf("invalid argument %q for \"--cpus\" flag: failed to parse %s as a rational number", rf.cpus, rf.cpus)
		}
		r.NanoCPUs = int64(f * 1e9)
	}
	return r, nil
}

// securityFlags are run's and create's flags for what the container's
// root may do.
type securityFlags struct {
	capAdd, capDrop, devices, securityOpts, ulimits []string
	privileged                                      bool
	shmSize                                         string
}

func (sf *securityFlags) add(fset *pflag.FlagSet) {
	fset.StringSliceVar(&sf.capAdd, "cap-add", nil, "add Linux `CAPABILITIES` (ALL: every one)")
	fset.StringSliceVar(&sf.capDrop, "cap-drop", nil, "drop Linux `CAPABILITIES` (ALL: every one)")
	fset.BoolVar(&sf.privileged, "privileged", false, "every capability, the host's devices, no seccomp filter")
	fset.StringArrayVar(&sf.devices, "device", nil, "make the host's device in the container: `HOST[:CONTAINER[:PERMS]]`")
	fset.StringArrayVar(&sf.securityOpts, "security-opt", nil, "`OPT`: no-new-privileges, seccomp=unconfined or seccomp=FILE")
	fset.StringArrayVar(&sf.ulimits, "ulimit", nil, "resource limit `NAME=SOFT[:HARD]` (nofile=1024:2048)")
	fset.StringVar(&sf.shmSize, "shm-size", "", "size of /dev/shm (`BYTES`, default 64m)")
}

// security is what the flags ask for.
func (sf *securityFlags) security() (runner.Security, error) {
	s := runner.Security{CapAdd: sf.capAdd, CapDrop: sf.capDrop, Privileged: sf.privileged}
	for _, d := range sf.devices {
		dev, err := runner.ParseDevice(d)
		if err != nil {
			return s, err
		}
		s.Devices = append(s.Devices, dev)
	}
	for _, o := range sf.securityOpts {
		if err := s.ApplySecurityOpt(o); err != nil {
			return s, err
		}
	}
	for _, u := range sf.ulimits {
		ul, err := runner.ParseUlimit(u)
		if err != nil {
			return s, fmt.Errorf("invalid argument %q for \"--ulimit\" flag: %w", u, err)
		}
		s.Ulimits = append(s.Ulimits, ul)
	}
	if sf.shmSize != "" {
		n, err := units.RAMInBytes(sf.shmSize)
		if err != nil || n <= 0 {
			return s, fmt.Errorf("invalid argument %q for \"--shm-size\" flag: a positive size is wanted", sf.shmSize)
		}
		s.ShmSize = n
	}
	return s, nil
}
