package fs

import (
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// FUSE passthrough lets the kernel read and write a layer file directly,
// without a round trip through this server per request. The kernel keeps
// one backing file per FUSE inode, and every later open of that inode gets
// the same backing while any open remains (handles.go). So once an inode has
// been backed by a lower file, no write may ever be opened on it: the
// kernel would reopen the backing file for writing — the lower file.
//
// The rule: a node that has had a lower backing (lowerBacked) is never
// opened for writing. Such an open copies the file up, renews the inode
// (same st_ino, new generation, so the kernel's next lookup gets a fresh
// FUSE inode) and fails with ESTALE, on which the kernel's open(2) looks
// the path up again and retries once — now on the fresh inode, backed by
// the upper file. Descriptors opened before keep reading the lower file,
// as a read-only descriptor opened before a copy-up does on kernel
// overlayfs when it is not switched over. The mark is never cleared: a
// backing may outlive our own bookkeeping of its last handle.

// ptHandle is a handle whose data the kernel may read and write directly.
type ptHandle struct{ *handle }

var _ = (gofs.FilePassthroughFder)((*ptHandle)(nil))

// PassthroughFd offers the layer file as the kernel's backing file.
func (h *ptHandle) PassthroughFd() (int, bool) { return h.fd, h.fd >= 0 }

// withPassthrough returns h as the kernel should see it: as a passthrough
// handle where passthrough is on. A handle on a lower file marks its node.
func (ov *overlay) withPassthrough(h *handle) gofs.FileHandle {
	if !ov.passthrough || h.lazy != nil {
		return h // a lazy layer's data is fetched by Read (lazy.go)
	}
	if h.lower {
		ov.emu.Lock()
		ov.lowerBacked[h.n.key()] = true
		ov.emu.Unlock()
	}
	return &ptHandle{h}
}

// hadLowerBacking reports whether node k may still be backed by a lower
// file in the kernel.
func (ov *overlay) hadLowerBacking(k nodeKey) bool {
	ov.emu.Lock()
	defer ov.emu.Unlock()
	return ov.lowerBacked[k]
}

// renew gives n's inode number a new generation, so the next lookup of its
// name makes a new FUSE inode, and returns ESTALE for the caller to pass
// to the kernel, which then looks the name up again.
//
// The old inode lives on for the descriptors open on it, beside the new
// one, and the kernel caches attributes per inode: the old one's would go
// stale as the file changes through the new one. So the old node is marked
// superseded, its cached attributes are dropped now, and it is never again
// given attributes the kernel may keep (attrTimeout).
func (ov *overlay) renew(n *node) syscall.Errno {
	ov.emu.Lock()
	ov.gens[n.ino()] = ov.gens[n.ino()].renewedGen()
	ov.emu.Unlock()
	ov.supersede(n, n.ino(), n.rel())
	n.NotifyContent(-1, 0) // attributes only
	return syscall.ESTALE
}

// isSuperseded reports whether node k has been renewed away.
func (ov *overlay) isSuperseded(k nodeKey) bool {
	ov.emu.Lock()
	defer ov.emu.Unlock()
	return ov.superseded[k]
}

// asHandle returns the handle behind a FileHandle of this package.
func asHandle(f gofs.FileHandle) (*handle, bool) {
	switch h := f.(type) {
	case *handle:
		return h, true
	case *ptHandle:
		return h.handle, true
	}
	return nil, false
}
