package main

import (
	"fmt"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// goFuseFS is the same trivial filesystem as a go-fuse RawFileSystem, to
// measure go-fuse's own /dev/fuse server (what unionfuse runs on today).
type goFuseFS struct {
	fuse.RawFileSystem
	f *fsys
}

func (g *goFuseFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	g.f.reqs.Add(1)
	return fuse.ENOENT
}

func (g *goFuseFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	g.f.reqs.Add(1)
	out.Ino = in.NodeId
	out.Mode = fuse.S_IFDIR | 0o755
	out.Nlink = 2
	return fuse.OK
}

func (g *goFuseFS) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	g.f.reqs.Add(1)
	return 0, fuse.ENOATTR
}

// mountGoFuse serves the trivial filesystem on mnt with go-fuse, with the
// mount options unionfuse uses that matter for a round trip.
func mountGoFuse(mnt string, f *fsys) (*fuse.Server, error) {
	srv, err := fuse.NewServer(&goFuseFS{RawFileSystem: fuse.NewDefaultRawFileSystem(), f: f}, mnt, &fuse.MountOptions{
		FsName: "uringbench", Name: "uringbench", DirectMount: true, MaxWrite: 1 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("go-fuse mount: %w", err)
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		srv.Unmount()
		return nil, err
	}
	return srv, nil
}
