package fs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// IDMap maps a range of user or group ids: the ids Inside (as the mount
// shows them) Inside..Inside+Len-1 are stored on disk as Outside..
// Outside+Len-1. This is fuse-overlayfs's uidmapping=/gidmapping=, which
// rootless podman uses to show a container's ids over files owned by the
// user's subordinate ids.
type IDMap struct {
	Inside, Outside, Len uint32
}

// overflowID is what an id without a mapping shows as (the kernel's
// overflowuid/overflowgid).
const overflowID = 65534

// toInside maps an id stored on disk to the id the mount shows.
func toInside(maps []IDMap, id uint32) uint32 {
	if len(maps) == 0 {
		return id
	}
	for _, m := range maps {
		if id >= m.Outside && id-m.Outside < m.Len {
			return m.Inside + (id - m.Outside)
		}
	}
	return overflowID
}

// toOutside maps an id the mount shows to the id stored on disk; ok is
// false when it has no mapping.
func toOutside(maps []IDMap, id uint32) (uint32, bool) {
	if len(maps) == 0 {
		return id, true
	}
	for _, m := range maps {
		if id >= m.Inside && id-m.Inside < m.Len {
			return m.Outside + (id - m.Inside), true
		}
	}
	return 0, false
}

// statToAttr converts the attributes of a layer object into those the
// kernel sees: ids mapped or squashed, directory link counts fixed when
// asked (static_nlink).
func (ov *overlay) statToAttr(st *unix.Stat_t, out *fuse.Attr) {
	out.FromStat(toSyscallStat(st))
	c := &ov.cfg
	out.Uid = toInside(c.UIDMap, out.Uid)
	out.Gid = toInside(c.GIDMap, out.Gid)
	if c.SquashUID != nil {
		out.Uid = *c.SquashUID
	}
	if c.SquashGID != nil {
		out.Gid = *c.SquashGID
	}
	if c.StaticNlink && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		out.Nlink = 1
	}
}

// diskOwner maps an owner given through the mount (chown, or the caller
// creating a file) to the owner stored on disk; -1 stays -1 ("unchanged").
// An id without a mapping is EINVAL, as chown(2) says for ids outside a
// user namespace.
func (ov *overlay) diskOwner(uid, gid int) (int, int, error) {
	if uid >= 0 {
		o, ok := toOutside(ov.cfg.UIDMap, uint32(uid))
		if !ok {
			return 0, 0, unix.EINVAL
		}
		uid = int(o)
	}
	if gid >= 0 {
		o, ok := toOutside(ov.cfg.GIDMap, uint32(gid))
		if !ok {
			return 0, 0, unix.EINVAL
		}
		gid = int(o)
	}
	return uid, gid, nil
}
