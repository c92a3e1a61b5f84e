package fs

import (
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Directories are served without OPENDIR and RELEASEDIR.
//
// Answering OPENDIR with ENOSYS tells the kernel not to send it (nor
// RELEASEDIR) again; it then keeps every listing in its page cache
// (FOPEN_KEEP_CACHE|FOPEN_CACHE_DIR) and asks only when it has none. A
// warm walk of a tree then costs no round trip per directory opened
// beyond the attributes. The listings it asks for arrive without a
// handle: dirServer opens one (bridge.OpenDir) for each directory being
// listed, from the first chunk (offset 0) to the end, so a listing keeps
// its positions while it is read. Nothing else needs an open directory:
// attributes of a directory removed while open are reached through the
// node (orphan.go).

// maxListings bounds the listings kept between two chunks; a reader that
// stops midway leaves one behind until then.
const maxListings = 256

// dirServer wraps the request server (bridge.go) to serve directories
// without OPENDIR.
type dirServer struct {
	fuse.RawFileSystem
	// nodeOf returns the node of a node id: a listing continues only on
	// the node it was taken of (an id is given again once forgotten).
	nodeOf func(id uint64) *node

	mu sync.Mutex
	// listings maps a directory's node id to the listing the kernel is
	// reading from it.
	listings map[uint64]*listing
}

// listing is a directory handle serving one listing, released
// when the listing ends (or is dropped) and no chunk is being read.
type listing struct {
	node, fh uint64
	n        *node
	readers  int
	ended    bool
}

func newDirServer(raw fuse.RawFileSystem, nodeOf func(uint64) *node) *dirServer {
	return &dirServer{RawFileSystem: raw, nodeOf: nodeOf, listings: make(map[uint64]*listing)}
}

// OpenDir declines: see above.
func (d *dirServer) OpenDir(cancel <-chan struct{}, input *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return fuse.ENOSYS
}

// ReadDir serves a chunk of a listing.
func (d *dirServer) ReadDir(cancel <-chan struct{}, input *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return d.read(cancel, input, out, d.RawFileSystem.ReadDir)
}

// ReadDirPlus serves a chunk of a listing with attributes.
func (d *dirServer) ReadDirPlus(cancel <-chan struct{}, input *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return d.read(cancel, input, out, d.RawFileSystem.ReadDirPlus)
}

func (d *dirServer) read(cancel <-chan struct{}, input *fuse.ReadIn, out *fuse.DirEntryList,
	read func(<-chan struct{}, *fuse.ReadIn, *fuse.DirEntryList) fuse.Status) fuse.Status {
	if input.Fh != 0 {
		return read(cancel, input, out)
	}
	l, st := d.acquire(cancel, &input.InHeader, input.Offset == 0)
	if st != fuse.OK {
		return st
	}
	in := *input
	in.Fh = l.fh
	st = read(cancel, &in, out)
	// An error, or nothing more: the listing has ended.
	d.putBack(l, st != fuse.OK || out.Offset == input.Offset)
	return st
}

// acquire returns the listing of the directory in hdr for one chunk, a
// new one when fresh (a listing read from its start).
func (d *dirServer) acquire(cancel <-chan struct{}, hdr *fuse.InHeader, fresh bool) (*listing, fuse.Status) {
	n := d.nodeOf(hdr.NodeId)
	d.mu.Lock()
	if l := d.listings[hdr.NodeId]; l != nil && !fresh && l.n == n {
		l.readers++
		d.mu.Unlock()
		return l, fuse.OK
	}
	d.mu.Unlock()
	var out fuse.OpenOut
	if st := d.RawFileSystem.OpenDir(cancel, &fuse.OpenIn{InHeader: *hdr, Flags: syscall.O_RDONLY | syscall.O_DIRECTORY}, &out); st != fuse.OK {
		return nil, st
	}
	l := &listing{node: hdr.NodeId, fh: out.Fh, n: n, readers: 1}
	var dropped []*listing
	d.mu.Lock()
	if old := d.listings[hdr.NodeId]; old != nil {
		dropped = append(dropped, old)
	}
	if len(d.listings) >= maxListings {
		for _, old := range d.listings {
			dropped = append(dropped, old)
		}
		clear(d.listings)
	}
	d.listings[hdr.NodeId] = l
	var release []*listing
	for _, old := range dropped {
		if !old.ended {
			old.ended = true
			if old.readers == 0 {
				release = append(release, old)
			}
		}
	}
	d.mu.Unlock()
	for _, old := range release {
		d.release(old)
	}
	return l, fuse.OK
}

// putBack returns l after a chunk, ending it when ended.
func (d *dirServer) putBack(l *listing, ended bool) {
	d.mu.Lock()
	l.readers--
	if ended && !l.ended {
		l.ended = true
		if d.listings[l.node] == l {
			delete(d.listings, l.node)
		}
	}
	free := l.ended && l.readers == 0
	d.mu.Unlock()
	if free {
		d.release(l)
	}
}

func (d *dirServer) release(l *listing) {
	d.RawFileSystem.ReleaseDir(&fuse.ReleaseIn{InHeader: fuse.InHeader{NodeId: l.node}, Fh: l.fh})
}

// FsyncDir flushes a directory; without a handle, through a passing one.
func (d *dirServer) FsyncDir(cancel <-chan struct{}, input *fuse.FsyncIn) fuse.Status {
	if input.Fh != 0 {
		return d.RawFileSystem.FsyncDir(cancel, input)
	}
	var out fuse.OpenOut
	if st := d.RawFileSystem.OpenDir(cancel, &fuse.OpenIn{InHeader: input.InHeader, Flags: syscall.O_RDONLY | syscall.O_DIRECTORY}, &out); st != fuse.OK {
		return st
	}
	defer d.release(&listing{node: input.NodeId, fh: out.Fh})
	in := *input
	in.Fh = out.Fh
	return d.RawFileSystem.FsyncDir(cancel, &in)
}
