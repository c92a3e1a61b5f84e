package main

import "github.com/unionfuse/unionfuse/runner"

// mountPoint is one of docker's Mounts (its api/types/container.MountPoint).
type mountPoint struct {
	Type        string
	Name        string `json:",omitempty"`
	Source      string
	Destination string
	Driver      string `json:",omitempty"`
	Mode        string
	RW          bool
	Propagation string
}

// mountsOf is a container's HostConfig.Binds, HostConfig.Tmpfs and Mounts
// as docker inspect shows them: binds and named volumes as -v wrote them,
// tmpfs mounts by path, and every mount in Mounts.
func mountsOf(vols []runner.Volume) (binds []string, tmpfs map[string]string, mounts []mountPoint) {
	binds, mounts = []string{}, []mountPoint{}
	for _, v := range vols {
		mode := "rw"
		if v.ReadOnly {
			mode = "ro"
		}
		m := mountPoint{Type: v.Kind(), Source: v.Source, Destination: v.Dest, Mode: mode, RW: !v.ReadOnly}
		switch v.Kind() {
		case runner.MountBind:
			m.Propagation = "rprivate"
			binds = append(binds, v.Source+":"+v.Dest+":"+mode)
		case runner.MountVolume:
			m.Name, m.Driver = v.Name, "local"
			if !v.Anonymous {
				binds = append(binds, v.Name+":"+v.Dest+":"+mode)
			}
		case runner.MountTmpfs:
			if tmpfs == nil {
				tmpfs = map[string]string{}
			}
			tmpfs[v.Dest] = v.Options
			m.Source = ""
		}
		mounts = append(mounts, m)
	}
	return binds, tmpfs, mounts
}

// mountColumn is a mount as docker ps's MOUNTS column names it: a
// volume by its name, a bind by its source.
func mountColumn(v runner.Volume) string {
	switch v.Kind() {
	case runner.MountVolume:
		return v.Name
	case runner.MountTmpfs:
		return v.Dest
	}
	return v.Source
}
