package fs

// Mounted is a live union mount served by this process.
type Mounted struct {
	// placeholder: filled in by the filesystem implementation.
}

// Mount validates cfg (see Config.Validate), opens the layers, prepares the
// work directory and mounts the union at merged. It returns once the union
// is visible at merged, so a stat right after it sees the files.
func Mount(merged string, cfg Config) (*Mounted, error) {
	panic("not implemented yet")
}

// Wait blocks until the union is unmounted (by Unmount, umount(8) or
// fusermount3 -u).
func (m *Mounted) Wait() {}

// Unmount detaches the union and waits until the server has stopped.
func (m *Mounted) Unmount() error { return nil }
