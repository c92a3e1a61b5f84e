package fs

import (
	"log"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// overlay is the state shared by every node of one mount.
type overlay struct {
	cfg Config
	// layers holds the upper layer first (when there is one), then the
	// lowers top first. Nodes refer to layers by index.
	layers []*layer
	upper  *layer // layers[0], or nil for a read-only union
	work   *layer // WORK/work, where objects are prepared; nil when read-only

	xattrPrefix string // "trusted.overlay." or "user.overlay."
	privileged  bool   // euid 0: owners of new objects can be set
	umask       uint32 // the process umask, undone explicitly on create
	log         *log.Logger

	// mu orders namespace changes: lookups and reads take it shared,
	// anything that changes a layer (copy-up, create, remove, rename) takes
	// it exclusively, so a lookup never sees a half-done change.
	mu sync.RWMutex

	// emu guards entries and copiedUp.
	emu sync.Mutex
	// entries holds, per reported inode number, the layers an object lives
	// in. go-fuse keeps one Inode per number, so state kept here is seen by
	// whichever Inode the kernel talks to.
	entries map[uint64]*entry
	// copiedUp maps an upper object made by copy-up to the inode number it
	// had before, so st_ino holds still for the life of the mount.
	copiedUp map[devIno]uint64
	// devIndex numbers the filesystems the layers live on; objects on the
	// upper's filesystem keep their inode numbers, others get the index in
	// the high bits (like the kernel's xino) so numbers never collide.
	devIndex map[uint64]uint64
	// tmpfiles holds the open handles of O_TMPFILE files not yet linked.
	tmpfiles map[uint64]*handle

	tmpSeq atomic.Uint64
}

type devIno struct{ dev, ino uint64 }

// entry is what the overlay knows about one object of the merged view.
type entry struct {
	// layers lists the layers holding the object, top first: one for a
	// non-directory, every contributing layer for a merged directory.
	layers []int
}

// inoOf returns the inode number reported for an object with attributes st.
func (ov *overlay) inoOf(st *unix.Stat_t) uint64 {
	ov.emu.Lock()
	defer ov.emu.Unlock()
	if ino, ok := ov.copiedUp[devIno{st.Dev, st.Ino}]; ok {
		return ino
	}
	idx := ov.devIndex[st.Dev]
	return st.Ino | idx<<56
}

// setEntry records the layers of the object reported as ino.
func (ov *overlay) setEntry(ino uint64, layers []int) {
	ov.emu.Lock()
	ov.entries[ino] = &entry{layers: layers}
	ov.emu.Unlock()
}

// layersOf returns the layers of ino, top first; nil if unknown.
func (ov *overlay) layersOf(ino uint64) []int {
	ov.emu.Lock()
	defer ov.emu.Unlock()
	if e := ov.entries[ino]; e != nil {
		return e.layers
	}
	return nil
}

// forget drops what is known about an object that no longer exists, and
// its copy-up record, so a recycled inode number starts afresh.
func (ov *overlay) forget(ino uint64, st *unix.Stat_t) {
	ov.emu.Lock()
	delete(ov.entries, ino)
	if st != nil {
		delete(ov.copiedUp, devIno{st.Dev, st.Ino})
	}
	ov.emu.Unlock()
}

// recordCopyUp notes that the upper object st now stands for ino.
func (ov *overlay) recordCopyUp(st *unix.Stat_t, ino uint64) {
	ov.emu.Lock()
	if st.Ino|ov.devIndex[st.Dev]<<56 != ino {
		ov.copiedUp[devIno{st.Dev, st.Ino}] = ino
	}
	ov.emu.Unlock()
}

func (ov *overlay) logf(format string, args ...any) {
	if ov.log != nil {
		ov.log.Printf(format, args...)
	}
}
