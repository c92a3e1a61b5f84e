package main

import (
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/runner"
)

// volumeFlags are run's (and create's) -v, --mount and --tmpfs.
type volumeFlags struct {
	volumes, mounts, tmpfs []string
}

func (f *volumeFlags) add(fset *pflag.FlagSet) {
	fset.StringArrayVarP(&f.volumes, "volume", "v", nil, "mount `[SRC:]DST[:OPTS]`: SRC a volume's name or a host path; no SRC, an anonymous volume; OPTS ro, rw, nocopy, z, Z")
	fset.StringArrayVar(&f.mounts, "mount", nil, "mount `type=bind|volume|tmpfs,source=SRC,target=DST[,readonly]`")
	fset.StringArrayVar(&f.tmpfs, "tmpfs", nil, "mount a tmpfs on `DST[:OPTS]` (size=64m,mode=1777,exec...)")
}

// apply puts the flags into o.
func (f *volumeFlags) apply(o *runner.Options) {
	o.Volumes, o.Mounts, o.Tmpfs = f.volumes, f.mounts, f.tmpfs
}
