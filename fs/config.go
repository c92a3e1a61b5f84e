package fs

import (
	"log"
)

// Config describes one union: its layers and how the mount behaves.
// Paths may be relative; Mount resolves them before it opens anything.
type Config struct {
	// Lowers are the read-only layers, top first, as in the kernel's
	// lowerdir=top:middle:bottom.
	Lowers []string
	// Upper is the writable layer. Empty means a read-only union: every
	// write fails with EROFS.
	Upper string
	// Work is a scratch directory on the same filesystem as Upper, where
	// copy-ups and whiteouts are built before they are renamed into place.
	// Required when Upper is set.
	Work string
	// UserXattr stores the overlay's private attributes under user.overlay.*
	// instead of trusted.overlay.* (the kernel's -o userxattr), for
	// unprivileged mounts.
	UserXattr bool
	// Debug logs every FUSE request and reply to Logger.
	Debug bool
	// Logger receives diagnostics; nil discards them.
	Logger *log.Logger
	// NoPassthrough keeps file data going through the server even where the
	// kernel could read and write the layer files directly (FUSE
	// passthrough, used by default as root on Linux 6.9+).
	NoPassthrough bool
	// FsName is the source shown in /proc/mounts (default "unionfuse").
	FsName string
	// MountOptions are extra generic mount flags passed to the kernel
	// (for example "nodev", "nosuid", "noexec", "noatime").
	MountOptions []string
}

// ReadOnly reports whether the union has no upper layer.
func (c *Config) ReadOnly() bool { return c.Upper == "" }
