package fs

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// A directory removed while open lives on through its descriptors: the
// kernel's overlay still reads and changes the attributes of an upper
// directory after rmdir (its inode is only unlinked). unionfuse keeps the
// O_PATH descriptor each open directory took at opendir and, once the
// directory is gone from the tree, works on it through /proc/self/fd.

// trackDir records an open directory handle whose descriptor is of the
// upper copy.
func (ov *overlay) trackDir(h *dirHandle) {
	ov.emu.Lock()
	k := h.n.key()
	if ov.openDirs[k] == nil {
		ov.openDirs[k] = map[*dirHandle]struct{}{}
	}
	ov.openDirs[k][h] = struct{}{}
	ov.emu.Unlock()
}

// untrackDir forgets h and closes its descriptor.
func (ov *overlay) untrackDir(h *dirHandle) {
	ov.emu.Lock()
	defer ov.emu.Unlock()
	k := h.n.key()
	if hs := ov.openDirs[k]; hs != nil {
		delete(hs, h)
		if len(hs) == 0 {
			delete(ov.openDirs, k)
		}
	}
	if h.fd >= 0 {
		unix.Close(h.fd)
		h.fd = -1
	}
}

// withOrphanDir calls fn with a /proc/self/fd path of the upper copy of n
// when n is a directory removed from the tree and still open; ok is false
// otherwise. The descriptor stays open while fn runs.
func (n *node) withOrphanDir(fn func(path string) error) (ok bool, err error) {
	if !n.IsDir() || !n.isOrphan() {
		return false, nil
	}
	ov := n.ov
	ov.emu.Lock()
	defer ov.emu.Unlock()
	for h := range ov.openDirs[n.key()] {
		if h.fd >= 0 {
			return true, fn("/proc/self/fd/" + strconv.Itoa(h.fd))
		}
	}
	return false, nil
}
