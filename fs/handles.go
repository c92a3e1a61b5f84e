package fs

import (
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// handleTable numbers the open files and directories the kernel holds
// (its file handles), and keeps, for each node with an open file, the
// handles open on it and its passthrough backing.
type handleTable struct {
	mu sync.Mutex
	// files maps a file handle to its entry; files[0] is unused, and a
	// free handle is nil. free holds the handles that may be given again.
	files []*fileEntry
	free  []uint64
	// open holds the nodes that have open handles.
	open map[*node]*openFiles
	// noBacking is set once the kernel refused a backing file: no
	// passthrough is asked for again.
	noBacking bool
}

// fileEntry is one open file or directory.
type fileEntry struct {
	n    *node
	file gofs.FileHandle
	// backed says the open takes a share of the node's backing file.
	// Guarded by the table's lock.
	backed bool
	// borrowed counts the requests that use the file without naming
	// its handle (anyOf); its release waits for them.
	borrowed sync.WaitGroup
	// mu keeps the reads of a directory listing in order.
	mu sync.Mutex
}

// openFiles is what is open on one node: its handles, and the backing
// file the kernel reads and writes directly (0 when none), with the
// number of handles using it. The kernel keeps one backing file per
// inode, so every passthrough open of a node shares the first one's
// while any remains (see passthrough.go).
type openFiles struct {
	fhs []uint64
	// closing counts the handles detached and not yet dropped.
	closing     int
	backingID   int32
	backingRefs int
}

// add numbers a file opened on n.
func (t *handleTable) add(n *node, file gofs.FileHandle) uint64 {
	e := &fileEntry{n: n, file: file}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.files == nil {
		t.files = []*fileEntry{nil}
		t.open = make(map[*node]*openFiles)
	}
	var fh uint64
	if k := len(t.free); k > 0 {
		fh = t.free[k-1]
		t.free = t.free[:k-1]
		t.files[fh] = e
	} else {
		t.files = append(t.files, e)
		fh = uint64(len(t.files) - 1)
	}
	o := t.open[n]
	if o == nil {
		o = &openFiles{}
		t.open[n] = o
	}
	o.fhs = append(o.fhs, fh)
	return fh
}

// entry returns the entry of a file handle, or nil.
func (t *handleTable) entry(fh uint64) *fileEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	if fh < uint64(len(t.files)) {
		return t.files[fh]
	}
	return nil
}

// file returns the file of a handle, or nil.
func (t *handleTable) file(fh uint64) gofs.FileHandle {
	if e := t.entry(fh); e != nil {
		return e.file
	}
	return nil
}

// anyOf returns a file open on n, or nil, and a function to call once
// done with it: the kernel asks for the attributes of an open file
// without naming its handle, and the file's release waits until then.
func (t *handleTable) anyOf(n *node) (gofs.FileHandle, func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if o := t.open[n]; o != nil && len(o.fhs) > 0 {
		e := t.files[o.fhs[0]]
		e.borrowed.Add(1)
		return e.file, e.borrowed.Done
	}
	return nil, func() {}
}

// detach takes the file of handle fh off its node's open files, so that
// no request borrows it any more, waits for those that have, and
// returns its entry; nil for a handle the kernel should not have sent.
func (t *handleTable) detach(fh uint64) *fileEntry {
	t.mu.Lock()
	if fh == 0 || fh >= uint64(len(t.files)) || t.files[fh] == nil {
		t.mu.Unlock()
		return nil
	}
	e := t.files[fh]
	o := t.open[e.n]
	for i, h := range o.fhs {
		if h == fh {
			o.fhs = append(o.fhs[:i], o.fhs[i+1:]...)
			o.closing++
			break
		}
	}
	t.mu.Unlock()
	e.borrowed.Wait()
	return e
}

// drop ends handle fh, detached before. The node's backing file is
// released with its last user (see backing).
func (t *handleTable) drop(fh uint64, server *fuse.Server) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.files[fh]
	t.files[fh] = nil
	t.free = append(t.free, fh)
	o := t.open[e.n]
	o.closing--
	if e.backed && o.backingID != 0 {
		o.backingRefs--
		if o.backingRefs == 0 {
			server.UnregisterBackingFd(o.backingID)
			o.backingID = 0
		}
	}
	if len(o.fhs) == 0 && o.closing == 0 {
		delete(t.open, e.n)
	}
}

// backing asks the kernel to read and write the file of handle fh
// directly, when the file offers a descriptor (FUSE passthrough). The
// node's backing file is registered with its first such open, and shared
// by the others.
func (t *handleTable) backing(fh uint64, server *fuse.Server, out *fuse.OpenOut) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.files[fh]
	pt, ok := e.file.(gofs.FilePassthroughFder)
	if !ok || server == nil || t.noBacking {
		return
	}
	o := t.open[e.n]
	if o.backingID == 0 {
		fd, ok := pt.PassthroughFd()
		if !ok {
			return
		}
		id, errno := server.RegisterBackingFd(&fuse.BackingMap{Fd: int32(fd)})
		if errno != 0 {
			// Not root, or no passthrough in this kernel.
			t.noBacking = true
			return
		}
		o.backingID = id
	}
	o.backingRefs++
	e.backed = true
	out.BackingID = o.backingID
	out.OpenFlags |= fuse.FOPEN_PASSTHROUGH
	out.OpenFlags &^= fuse.FOPEN_KEEP_CACHE
}

// opened numbers a file just opened on n and fills in the reply.
func (b *bridge) opened(n *node, file gofs.FileHandle, flags uint32, out *fuse.OpenOut) {
	out.OpenFlags = flags
	if file == nil {
		return
	}
	out.Fh = b.handles.add(n, file)
	b.handles.backing(out.Fh, b.tree.server, out)
}

// Open opens a file.
func (b *bridge) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	n, st := b.node(in.NodeId)
	if st != fuse.OK {
		return st
	}
	file, flags, errno := n.Open(ctx(cancel, &in.InHeader), in.Flags)
	if errno != 0 {
		return fuse.Status(errno)
	}
	b.opened(n, file, flags, out)
	return fuse.OK
}

// Create makes and opens a regular file.
func (b *bridge) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	procs.changed()
	parent, st := b.node(in.NodeId)
	if st != fuse.OK {
		return st
	}
	child, file, flags, errno := parent.Create(ctx(cancel, &in.InHeader), name, in.Flags, in.Mode, &out.EntryOut)
	if errno != 0 {
		return fuse.Status(errno)
	}
	child = b.added(parent, name, child, true, &out.EntryOut)
	b.opened(child, file, flags, &out.OpenOut)
	return fuse.OK
}

// Tmpfile makes and opens a file with no name (O_TMPFILE).
func (b *bridge) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	procs.changed()
	parent, st := b.node(in.NodeId)
	if st != fuse.OK {
		return st
	}
	child, file, flags, errno := parent.Tmpfile(ctx(cancel, &in.InHeader), in.Flags, in.Mode, &out.EntryOut)
	if errno != 0 {
		return fuse.Status(errno)
	}
	child = b.added(parent, "", child, true, &out.EntryOut)
	b.opened(child, file, flags, &out.OpenOut)
	return fuse.OK
}

// Release closes a file: once no request uses it, the file is released,
// then its handle.
func (b *bridge) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	e := b.handles.detach(in.Fh)
	if e == nil {
		return
	}
	if r, ok := e.file.(gofs.FileReleaser); ok {
		r.Release(ctx(cancel, &in.InHeader))
	}
	b.handles.drop(in.Fh, b.tree.server)
}

// fileOf returns the file of a request's handle.
func (b *bridge) fileOf(fh uint64) (gofs.FileHandle, fuse.Status) {
	if f := b.handles.file(fh); f != nil {
		return f, fuse.OK
	}
	return nil, fuse.Status(syscall.EBADF)
}

// Read reads from an open file.
func (b *bridge) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	f, st := b.fileOf(in.Fh)
	if st != fuse.OK {
		return nil, st
	}
	r, ok := f.(gofs.FileReader)
	if !ok {
		return nil, fuse.ENOTSUP
	}
	res, errno := r.Read(ctx(cancel, &in.InHeader), buf, int64(in.Offset))
	return res, fuse.Status(errno)
}

// Write writes to an open file.
func (b *bridge) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	procs.changed()
	f, st := b.fileOf(in.Fh)
	if st != fuse.OK {
		return 0, st
	}
	w, ok := f.(gofs.FileWriter)
	if !ok {
		return 0, fuse.ENOTSUP
	}
	n, errno := w.Write(ctx(cancel, &in.InHeader), data, int64(in.Offset))
	return n, fuse.Status(errno)
}

// Flush is called on every close(2) of a descriptor.
func (b *bridge) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	f, st := b.fileOf(in.Fh)
	if st != fuse.OK {
		return st
	}
	if fl, ok := f.(gofs.FileFlusher); ok {
		return fuse.Status(fl.Flush(ctx(cancel, &in.InHeader)))
	}
	return fuse.OK
}

// Fsync flushes an open file to its disk.
func (b *bridge) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	f, st := b.fileOf(in.Fh)
	if st != fuse.OK {
		return st
	}
	if fs, ok := f.(gofs.FileFsyncer); ok {
		return fuse.Status(fs.Fsync(ctx(cancel, &in.InHeader), in.FsyncFlags))
	}
	return fuse.ENOTSUP
}

// Fallocate allocates or punches space in an open file.
func (b *bridge) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	procs.changed()
	f, st := b.fileOf(in.Fh)
	if st != fuse.OK {
		return st
	}
	if a, ok := f.(gofs.FileAllocater); ok {
		return fuse.Status(a.Allocate(ctx(cancel, &in.InHeader), in.Offset, in.Length, in.Mode))
	}
	return fuse.ENOTSUP
}

// Lseek finds data or a hole in an open file.
func (b *bridge) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	f, st := b.fileOf(in.Fh)
	if st != fuse.OK {
		return st
	}
	ls, ok := f.(gofs.FileLseeker)
	if !ok {
		return fuse.ENOSYS
	}
	off, errno := ls.Lseek(ctx(cancel, &in.InHeader), in.Offset, in.Whence)
	out.Offset = off
	return fuse.Status(errno)
}

// OpenDir opens a directory listing (dirserver.go opens them for the
// kernel, which is told not to).
func (b *bridge) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	n, st := b.node(in.NodeId)
	if st != fuse.OK {
		return st
	}
	h, flags, errno := n.OpendirHandle(ctx(cancel, &in.InHeader), in.Flags)
	if errno != 0 {
		return fuse.Status(errno)
	}
	if flags&(fuse.FOPEN_CACHE_DIR|fuse.FOPEN_KEEP_CACHE) != 0 {
		flags |= fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
	}
	out.Fh = b.handles.add(n, h)
	out.OpenFlags = flags
	return fuse.OK
}

// ReadDir serves a chunk of a listing.
func (b *bridge) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return b.readDir(cancel, in, out, false)
}

// ReadDirPlus serves a chunk of a listing with each entry looked up.
func (b *bridge) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return b.readDir(cancel, in, out, true)
}

// readDir fills out from the listing of handle in.Fh, from in.Offset;
// with plus, each entry is looked up too, as LOOKUP would (an entry the
// lookup declines goes without attributes: rdplus.go).
func (b *bridge) readDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList, plus bool) fuse.Status {
	e := b.handles.entry(in.Fh)
	if e == nil {
		return fuse.Status(syscall.EBADF)
	}
	h, ok := e.file.(*dirHandle)
	if !ok {
		return fuse.Status(syscall.ENOTDIR)
	}
	c := ctx(cancel, &in.InHeader)
	e.mu.Lock()
	defer e.mu.Unlock()
	if !h.loaded || in.Offset != uint64(h.pos) {
		if errno := h.Seekdir(c, in.Offset); errno != 0 {
			return fuse.Status(errno)
		}
	}
	for {
		de, ok, errno := h.next()
		if errno != 0 {
			return fuse.Status(errno)
		}
		if !ok {
			return fuse.OK
		}
		if !plus {
			if !out.AddDirEntry(de) {
				h.pos-- // sent with the next chunk
				return fuse.OK
			}
			continue
		}
		eo := out.AddDirLookupEntry(de)
		if eo == nil {
			h.pos--
			return fuse.OK
		}
		if de.Name == "." || de.Name == ".." {
			continue // the kernel ignores their attributes
		}
		child, name, errno := h.Lookup(c, de.Name, eo)
		if errno != 0 {
			continue // listed without attributes
		}
		child = b.added(e.n, name, child, false, eo)
		if de.Mode&syscall.S_IFMT != child.attr.Mode {
			out.FixMode(child.attr.Mode) // the type changed since the listing
		}
	}
}

// ReleaseDir closes a listing.
func (b *bridge) ReleaseDir(in *fuse.ReleaseIn) {
	e := b.handles.detach(in.Fh)
	if e == nil {
		return
	}
	if r, ok := e.file.(gofs.FileReleasedirer); ok {
		r.Releasedir(&fuse.Context{Caller: in.Caller}, in.ReleaseFlags)
	}
	b.handles.drop(in.Fh, b.tree.server)
}

// FsyncDir flushes a directory.
func (b *bridge) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	f, st := b.fileOf(in.Fh)
	if st != fuse.OK {
		return st
	}
	if fs, ok := f.(gofs.FileFsyncdirer); ok {
		return fuse.Status(fs.Fsyncdir(ctx(cancel, &in.InHeader), in.FsyncFlags))
	}
	return fuse.ENOTSUP
}
