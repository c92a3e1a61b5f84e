package runner

import (
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// A transient container (Options.Transient: a build step's) belongs to
// the process that created it, which holds containers/<id>/owner.lock
// (flock) until it removes the container. Once that process is gone —
// killed, so that it could not remove it — the next List removes the
// container, its mount and its FUSE daemon (reap), as the monitor lock
// lets it reap a container whose monitor died.

// ownerLocks are the owner locks this process holds, by container id.
var ownerLocks = struct {
	sync.Mutex
	files map[string]*os.File
}{files: map[string]*os.File{}}

// takeOwnership makes and locks c's owner.lock. The lock is close-on-exec:
// a container's processes do not keep it alive.
func takeOwnership(c *Container) error {
	f, err := os.OpenFile(filepath.Join(c.dir, "owner.lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return err
	}
	ownerLocks.Lock()
	ownerLocks.files[c.ID] = f
	ownerLocks.Unlock()
	return nil
}

// releaseOwnership drops this process's owner lock of the container id,
// if it holds one.
func releaseOwnership(id string) {
	ownerLocks.Lock()
	defer ownerLocks.Unlock()
	if f, ok := ownerLocks.files[id]; ok {
		f.Close()
		delete(ownerLocks.files, id)
	}
}

// ownerGone reports whether c is transient and the process that owns it
// is gone.
func ownerGone(c *Container) bool {
	if !c.Config.Transient {
		return false
	}
	f, err := os.OpenFile(filepath.Join(c.dir, "owner.lock"), os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil
}
