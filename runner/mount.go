package runner

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/fs"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// Mount mounts the container's root at Rootfs: the image's layers and the
// init layer read-only, the container's layer writable, served by a
// unionfuse daemon (a process of its own). It returns the mount point.
func (r *Runner) Mount(c *Container) (string, error) {
	merged := c.Rootfs()
	if mounted(merged) {
		return "", fmt.Errorf("container %s: its root is mounted already (is it running?)", c.ShortID())
	}
	lowers := []string{c.InitDir()}
	if c.Image != "" {
		img, err := r.store.Image(string(c.Image))
		if err != nil {
			return "", fmt.Errorf("container %s: image: %w", c.ShortID(), err)
		}
		lowers = append(lowers, r.store.LayerDirs(img)...)
	}
	cfg := fs.Config{
		Lowers:    lowers,
		Upper:     c.UpperDir(),
		Work:      c.WorkDir(),
		UserXattr: r.store.UserXattr(),
		FsName:    "unionfuse:" + c.ShortID(),
		// A container's upper becomes a layer (commit, a build step), and
		// a layer cannot carry a redirect: a rename of a directory with
		// lower content fails with EXDEV and mv copies, as with docker's
		// overlay2. Redirects already in an upper are still followed.
		Redirect: fs.RedirectOff,
	}
	if err := cfg.Validate(merged); err != nil {
		return "", fmt.Errorf("container %s: %w", c.ShortID(), err)
	}
	spec := daemon.Spec{Merged: merged, Config: cfg, LogFile: filepath.Join(c.dir, "fuse.log")}
	if err := daemon.Start(spec); err != nil {
		return "", fmt.Errorf("container %s: mount: %w", c.ShortID(), err)
	}
	return merged, nil
}

// Unmount unmounts the container's root and waits for its daemon to exit.
// A root that is still busy (a process of the container survived) is
// detached lazily. Unmounting what is not mounted is not an error.
func (r *Runner) Unmount(c *Container) error {
	merged := c.Rootfs()
	if !mounted(merged) {
		return nil
	}
	rec, recErr := daemon.ReadPid(merged)
	wait := daemon.WaitUnmounted
	err := daemon.Unmount(merged, false)
	if err != nil && !errors.Is(err, daemon.ErrNotMounted) {
		// Still in use here: the daemon serves its users until they
		// leave.
		wait = daemon.WaitExit
		err = daemon.Unmount(merged, true)
	}
	if err != nil && !errors.Is(err, daemon.ErrNotMounted) {
		return fmt.Errorf("container %s: %w", c.ShortID(), err)
	}
	if recErr == nil {
		return wait(rec, 10*time.Second)
	}
	return nil
}

// LayerIdle returns nil when nothing serves the container's layer any
// more: its root is not mounted and no daemon of it runs. Only then may
// the layer be moved away (a build step's layer becoming the step's
// image layer, cowcache.UpperCommit.Move).
func (r *Runner) LayerIdle(c *Container) error {
	if mounted(c.Rootfs()) || fuseServerAlive(c) {
		return fmt.Errorf("container %s: its root is still mounted or served", c.ShortID())
	}
	return nil
}

// fuseServerAlive reports whether the daemon serving the container's root
// runs.
func fuseServerAlive(c *Container) bool {
	rec, err := daemon.ReadPid(c.Rootfs())
	return err == nil && rec.Alive()
}

// flushRootfs has the kernel write what it holds of a running container's
// writes (its writeback cache, fs/writeback.go) to the container's layer,
// where commit and diff read them: syncfs(2) of its root. Nothing is lost
// without it, only not in the layer yet; so a daemon that does not answer
// within flushWait is not waited for longer.
func flushRootfs(c *Container) {
	if !c.Running() || !mounted(c.Rootfs()) || !fuseServerAlive(c) {
		return // a dead server's mount would only fail or hang
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fd, err := unix.Open(c.Rootfs(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		unix.Syncfs(fd)
		unix.Close(fd)
	}()
	select {
	case <-done:
	case <-time.After(flushWait):
	}
}

// flushWait bounds flushRootfs.
const flushWait = 10 * time.Second

// mounted reports whether path is a mount point, from the mount table
// (never touching the mount itself, which may be dead or hung).
func mounted(path string) bool {
	ok, _ := mountinfo.IsMountPoint(path)
	return ok
}

// imageOf returns the container's image, nil for scratch.
func (r *Runner) imageOf(c *Container) (*cowcache.Image, error) {
	if c.Image == "" {
		return nil, nil
	}
	img, err := r.store.Image(string(c.Image))
	if err != nil {
		return nil, err
	}
	return &img, nil
}
