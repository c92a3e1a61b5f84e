package main

import (
	"github.com/unionfuse/unionfuse/runner"
)

// hostResources are the limits and privileges of docker's HostConfig.
type hostResources struct {
	Memory         int64
	MemorySwap     int64
	NanoCpus       int64 //nolint:revive // docker's name
	CpuShares      int64 //nolint:revive // docker's name
	CpusetCpus     string
	PidsLimit      *int64
	OomKillDisable bool
	CapAdd         []string
	CapDrop        []string
	Privileged     bool
	SecurityOpt    []string
	Devices        []deviceMapping
	Ulimits        []ulimit
	ShmSize        int64
}

type deviceMapping struct {
	PathOnHost, PathInContainer, CgroupPermissions string
}

type ulimit struct {
	Name       string
	Soft, Hard int64
}

// hostResourcesOf is cfg's part of HostConfig, as docker shows it.
func hostResourcesOf(cfg runner.Config) hostResources {
	res, sec := cfg.Resources, cfg.Security
	h := hostResources{
		Memory: res.Memory, MemorySwap: res.MemorySwap, NanoCpus: res.NanoCPUs, CpuShares: res.CPUShares,
		CpusetCpus: res.CpusetCpus, OomKillDisable: res.OomKillDisable,
		CapAdd: sec.CapAdd, CapDrop: sec.CapDrop, Privileged: sec.Privileged, ShmSize: sec.ShmSize,
		Devices: []deviceMapping{}, Ulimits: []ulimit{},
	}
	if h.ShmSize == 0 {
		h.ShmSize = 64 << 20
	}
	if res.PidsLimit != 0 {
		h.PidsLimit = &res.PidsLimit
	}
	if sec.NoNewPrivileges {
		h.SecurityOpt = append(h.SecurityOpt, "no-new-privileges")
	}
	if sec.Seccomp == "unconfined" {
		h.SecurityOpt = append(h.SecurityOpt, "seccomp=unconfined")
	} else if sec.Seccomp != "" {
		h.SecurityOpt = append(h.SecurityOpt, "seccomp="+sec.Seccomp)
	}
	for _, d := range sec.Devices {
		h.Devices = append(h.Devices, deviceMapping{PathOnHost: d.Host, PathInContainer: d.Container, CgroupPermissions: d.Perms})
	}
	for _, u := range sec.Ulimits {
		h.Ulimits = append(h.Ulimits, ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	return h
}
