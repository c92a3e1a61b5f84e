package fs

import (
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// bridge serves the kernel's FUSE requests (go-fuse's RawFileSystem) on
// the overlay's nodes: it turns node ids and file handles into nodes and
// handles (tree.go, handles.go), calls the node's operation, and records
// in the tree what the kernel was given or has let go.
type bridge struct {
	// Answers ENOSYS for what unionfuse does not serve (ACCESS, STATX,
	// locks, ioctls, COPY_FILE_RANGE): the kernel then does it itself or
	// falls back to another request.
	fuse.RawFileSystem

	ov      *overlay
	tree    *tree
	handles handleTable
	// timeout is how long the kernel may keep entries, attributes and
	// absent names.
	timeout time.Duration
}

// newBridge returns the request server of ov, whose tree is built.
func newBridge(ov *overlay, timeout time.Duration) *bridge {
	return &bridge{RawFileSystem: fuse.NewDefaultRawFileSystem(), ov: ov, tree: ov.tree, timeout: timeout}
}

func (b *bridge) String() string { return "unionfuse" }

// Init keeps the server, which sends the notifications.
func (b *bridge) Init(s *fuse.Server) { b.tree.server = s }

// OnUnmount releases the root's state, as a FORGET would.
func (b *bridge) OnUnmount() { b.ov.nodeForgotten(b.tree.root) }

// ctx is the context of a request: the caller and the kernel's interrupt.
func ctx(cancel <-chan struct{}, h *fuse.InHeader) *fuse.Context {
	return &fuse.Context{Caller: h.Caller, Cancel: cancel}
}

// node returns the node of a request's node id. The kernel sends only
// ids it holds; one it does not is answered ESTALE.
func (b *bridge) node(id uint64) (*node, fuse.Status) {
	if n := b.tree.node(id); n != nil {
		return n, fuse.OK
	}
	return nil, fuse.Status(syscall.ESTALE)
}

// entryOut gives a reply the timeouts the node did not set.
func (b *bridge) entryOut(out *fuse.EntryOut) {
	if out.AttrTimeout() == 0 {
		out.SetAttrTimeout(b.timeout)
	}
	if out.EntryTimeout() == 0 {
		out.SetEntryTimeout(b.timeout)
	}
	setBlocks(&out.Attr)
}

// attrOut completes a GETATTR reply for n.
func (b *bridge) attrOut(n *node, out *fuse.AttrOut) {
	out.Ino = n.attr.Ino
	out.Mode = out.Attr.Mode&0o7777 | n.attr.Mode
	setBlocks(&out.Attr)
	if out.Timeout() == 0 {
		out.SetTimeout(b.timeout)
	}
}

// setBlocks fills in the block size and count when the attributes have
// none, as go-fuse did.
func setBlocks(a *fuse.Attr) {
	if a.Blksize > 0 {
		return
	}
	a.Blksize = 4096
	a.Blocks = (a.Size + 4095) / 4096 * 8
}

// added registers a node a request made or found for name in parent (see
// tree.register, which marks it recent for the pruner, prune.go) and
// completes the reply.
func (b *bridge) added(parent *node, name string, child *node, exclusive bool, out *fuse.EntryOut) *node {
	child = b.tree.register(parent, name, child, exclusive, out)
	b.ov.pruner.touch()
	b.entryOut(out)
	return child
}

// Lookup resolves name in a directory. An absent name is cached by the
// kernel for the timeout (a reply with node id 0).
func (b *bridge) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	parent, st := b.node(h.NodeId)
	if st != fuse.OK {
		return st
	}
	if name == "." || name == ".." {
		return fuse.Status(syscall.ESTALE) // only for NFS export, which is not served
	}
	child, errno := parent.Lookup(ctx(cancel, h), name, out)
	if errno == syscall.ENOENT && out.EntryTimeout() == 0 {
		*out = fuse.EntryOut{}
		out.SetEntryTimeout(b.timeout)
		return fuse.OK
	}
	if errno != 0 {
		return fuse.Status(errno)
	}
	b.added(parent, name, child, false, out)
	return fuse.OK
}

// Forget takes back the kernel's lookups of a node.
func (b *bridge) Forget(id, count uint64) { b.tree.forget(id, count) }

// GetAttr reports a node's attributes, through the handle the kernel
// names or else any handle open on the node (an unlinked file has no
// path).
func (b *bridge) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	n, st := b.node(in.NodeId)
	if st != fuse.OK {
		return st
	}
	var f gofs.FileHandle
	if fh := in.Fh(); fh != 0 {
		f = b.handles.file(fh)
	} else {
		var done func()
		f, done = b.handles.anyOf(n)
		defer done()
	}
	if errno := n.Getattr(ctx(cancel, &in.InHeader), f, out); errno != 0 {
		return fuse.Status(errno)
	}
	b.attrOut(n, out)
	return fuse.OK
}

// SetAttr changes a node's attributes.
func (b *bridge) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	procs.changed()
	n, st := b.node(in.NodeId)
	if st != fuse.OK {
		return st
	}
	var f gofs.FileHandle
	if fh, ok := in.GetFh(); ok {
		f = b.handles.file(fh)
	}
	errno := n.Setattr(ctx(cancel, &in.InHeader), f, in, out)
	// No timeout unless the node set one: the next stat asks again.
	out.Mode = out.Attr.Mode&0o7777 | n.attr.Mode
	return fuse.Status(errno)
}

// Mknod makes a device, fifo, socket or regular file.
func (b *bridge) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	procs.changed()
	parent, st := b.node(in.NodeId)
	if st != fuse.OK {
		return st
	}
	child, errno := parent.Mknod(ctx(cancel, &in.InHeader), name, in.Mode, in.Rdev, out)
	if errno != 0 {
		return fuse.Status(errno)
	}
	b.added(parent, name, child, true, out)
	return fuse.OK
}

// Mkdir makes a directory.
func (b *bridge) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	procs.changed()
	parent, st := b.node(in.NodeId)
	if st != fuse.OK {
		return st
	}
	child, errno := parent.Mkdir(ctx(cancel, &in.InHeader), name, in.Mode, out)
	if errno != 0 {
		return fuse.Status(errno)
	}
	b.added(parent, name, child, true, out)
	return fuse.OK
}

// Symlink makes a symbolic link.
func (b *bridge) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	procs.changed()
	parent, st := b.node(h.NodeId)
	if st != fuse.OK {
		return st
	}
	child, errno := parent.Symlink(ctx(cancel, h), target, name, out)
	if errno != 0 {
		return fuse.Status(errno)
	}
	b.added(parent, name, child, true, out)
	return fuse.OK
}

// Link gives a node another name.
func (b *bridge) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	procs.changed()
	parent, st := b.node(in.NodeId)
	if st != fuse.OK {
		return st
	}
	target, st := b.node(in.Oldnodeid)
	if st != fuse.OK {
		return st
	}
	child, errno := parent.Link(ctx(cancel, &in.InHeader), target, name, out)
	if errno != 0 {
		return fuse.Status(errno)
	}
	b.added(parent, name, child, false, out)
	return fuse.OK
}

// Unlink removes a non-directory name.
func (b *bridge) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	procs.changed()
	parent, st := b.node(h.NodeId)
	if st != fuse.OK {
		return st
	}
	errno := parent.Unlink(ctx(cancel, h), name)
	if errno == 0 {
		b.tree.remove(parent, name)
	}
	return fuse.Status(errno)
}

// Rmdir removes a directory.
func (b *bridge) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	procs.changed()
	parent, st := b.node(h.NodeId)
	if st != fuse.OK {
		return st
	}
	errno := parent.Rmdir(ctx(cancel, h), name)
	if errno == 0 {
		b.tree.remove(parent, name)
	}
	return fuse.Status(errno)
}

// Rename moves a name, and the tree with it, under the overlay's lock:
// a lookup in between would otherwise see the layers moved and the tree
// not yet (a node's path is derived from the tree).
func (b *bridge) Rename(cancel <-chan struct{}, in *fuse.RenameIn, name, newName string) fuse.Status {
	procs.changed()
	parent, st := b.node(in.NodeId)
	if st != fuse.OK {
		return st
	}
	newParent, st := b.node(in.Newdir)
	if st != fuse.OK {
		return st
	}
	b.ov.mu.Lock()
	same, errno := parent.Rename(ctx(cancel, &in.InHeader), name, newParent, newName, in.Flags)
	var gone []*node
	switch {
	case errno != 0:
	case same:
		// Nothing moved, but the kernel, which has a node for each name,
		// now moves its dentries: the node ids follow them (tree.trade).
		gone = b.tree.trade(parent, name, newParent, newName)
	default:
		gone = b.tree.move(parent, name, newParent, newName, in.Flags&gofs.RENAME_EXCHANGE != 0)
	}
	b.ov.mu.Unlock()
	for _, g := range gone {
		b.tree.onForget(g)
	}
	return fuse.Status(errno)
}

// Readlink returns a symbolic link's target.
func (b *bridge) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	n, st := b.node(h.NodeId)
	if st != fuse.OK {
		return nil, st
	}
	target, errno := n.Readlink(ctx(cancel, h))
	return target, fuse.Status(errno)
}

// GetXAttr reads an extended attribute.
func (b *bridge) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	n, st := b.node(h.NodeId)
	if st != fuse.OK {
		return 0, st
	}
	sz, errno := n.Getxattr(ctx(cancel, h), attr, dest)
	return sz, fuse.Status(errno)
}

// ListXAttr lists the extended attributes.
func (b *bridge) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	n, st := b.node(h.NodeId)
	if st != fuse.OK {
		return 0, st
	}
	sz, errno := n.Listxattr(ctx(cancel, h), dest)
	return sz, fuse.Status(errno)
}

// SetXAttr sets an extended attribute.
func (b *bridge) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	procs.changed()
	n, st := b.node(in.NodeId)
	if st != fuse.OK {
		return st
	}
	return fuse.Status(n.Setxattr(ctx(cancel, &in.InHeader), attr, data, in.Flags))
}

// RemoveXAttr removes an extended attribute.
func (b *bridge) RemoveXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string) fuse.Status {
	procs.changed()
	n, st := b.node(h.NodeId)
	if st != fuse.OK {
		return st
	}
	return fuse.Status(n.Removexattr(ctx(cancel, h), attr))
}

// StatFs reports the filesystem's usage.
func (b *bridge) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	n, st := b.node(h.NodeId)
	if st != fuse.OK {
		return st
	}
	return fuse.Status(n.Statfs(ctx(cancel, h), out))
}
