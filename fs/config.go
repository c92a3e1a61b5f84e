package fs

import (
	"log"
	"time"
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
	// Index keeps hard links between lower files across copy-up, as the
	// kernel's index=on (see index.go). Needs file handles on the layers.
	Index bool
	// Redirect says whether directories with lower content can be renamed
	// (the kernel's redirect_dir=); the zero value is RedirectOn.
	Redirect RedirectMode
	// Metacopy copies up only the metadata of a regular file when only its
	// metadata changes (chmod, chown, utimes, setxattr, rename, link), as
	// the kernel's metacopy=on; the data follows on the first open for
	// writing or truncation (metacopy.go). Needs Redirect RedirectOn
	// (RedirectFollow will do for a read-only union), and is refused with
	// UserXattr, as in the kernel.
	Metacopy bool
	// DataLowers are data-only lower layers, top first (the kernel's
	// lowerdir=l1:l2::data1::data2, or datadir+=): never merged into the
	// namespace, only read as the data of metacopy files of Lowers whose
	// absolute redirects lead there (metacopy.go).
	DataLowers []string
	// NoPassthrough keeps file data going through the server even where the
	// kernel could read and write the layer files directly (FUSE
	// passthrough, used by default as root on Linux 6.9+).
	NoPassthrough bool
	// Writeback says whether the kernel keeps written data in its page
	// cache and sends it to the server later (writeback.go); the zero
	// value, WritebackAuto, does wherever that is sound.
	Writeback WritebackMode
	// UIDMap and GIDMap map the ids the mount shows to the ids stored in
	// the layers (fuse-overlayfs's uidmapping=/gidmapping=). Empty: ids are
	// shown as stored.
	UIDMap, GIDMap []IDMap
	// SquashUID and SquashGID, when set, are the owner every object is
	// shown with (squash_to_uid=, squash_to_gid=, squash_to_root).
	SquashUID, SquashGID *uint32
	// StaticNlink reports a link count of 1 for every directory, as
	// fuse-overlayfs's static_nlink does (find(1) then stops assuming it
	// can count subdirectories).
	StaticNlink bool
	// NoACL refuses POSIX ACLs (system.posix_acl_*) through the mount.
	NoACL bool
	// NoFsync turns fsync(2) and fdatasync(2) into no-ops (fuse-overlayfs's
	// fsync=0, the kernel's volatile): faster, and nothing survives a crash.
	NoFsync bool
	// XinoOff reports the layers' own inode numbers, without the
	// filesystem index in the high bits (xino=off). They may then collide
	// when the layers live on several filesystems.
	XinoOff bool
	// MaxNodes bounds the inodes the kernel may keep looked up, and so
	// the daemon's node tree: beyond it the least recently looked-up
	// ones the kernel is not using are dropped (prune.go). 0 means the
	// default (65,536); negative means no bound. Needs Linux 6.16 or
	// later; older kernels keep every inode until memory pressure.
	MaxNodes int
	// OnIdle, when set, runs each time a mount with a node bound has
	// served no lookup for IdleTrimAfter and has asked the kernel to
	// forget every node it is not using (prune.go): a daemon returns the
	// memory freed to the system there (debug.FreeOSMemory).
	OnIdle func() `json:"-"`
	// ServerStaysOut says that the process serving the union never opens
	// files in it itself (a stat is harmless), as a daemon does not.
	// Mount then returns as soon as the union is mounted and the kernel's
	// INIT answered, without go-fuse's poll probe: four requests through
	// the new mount, which keep the Go runtime of a process that opens
	// its own union's files from waiting on itself (fuse/poll.go), and
	// which would keep the mount busy for an umount right after the
	// mount command returned.
	ServerStaysOut bool `json:"-"`
	// IdleTrimAfter is how long a mount with a node bound serves no
	// lookup before that trim; 0 means 30 seconds.
	IdleTrimAfter time.Duration
	// AllowOther lets other users than the mounting one use the mount
	// (always on for root; for others fusermount3 needs user_allow_other
	// in /etc/fuse.conf).
	AllowOther bool
	// FsName is the source shown in /proc/mounts (default "unionfuse").
	FsName string
	// MountOptions are extra generic mount flags passed to the kernel
	// (for example "nodev", "nosuid", "noexec", "noatime").
	MountOptions []string
	// Fetchers, when set, is asked once per lower directory (as given in
	// Lowers) for the Fetcher of a lazy layer, whose file data arrives on
	// demand (lazy.go); nil for a complete layer. It is not passed to a
	// daemon process, which gets its own (internal/daemon).
	Fetchers func(lowerDir string) (Fetcher, error) `json:"-"`
}

// ReadOnly reports whether the union has no upper layer.
func (c *Config) ReadOnly() bool { return c.Upper == "" }

// RedirectMode is the kernel's redirect_dir= setting: whether a rename of a
// directory that has lower content records where that content lives (an
// overlay.redirect attribute), and whether such records are followed.
type RedirectMode int

const (
	// RedirectOn renames such directories and follows redirects.
	RedirectOn RedirectMode = iota
	// RedirectFollow follows redirects but renames fail with EXDEV.
	RedirectFollow
	// RedirectOff is RedirectFollow, as the kernel's redirect_dir=off with
	// its default redirect_always_follow.
	RedirectOff
	// RedirectNoFollow ignores redirects; a lookup that would need one
	// fails with EPERM, as in the kernel.
	RedirectNoFollow
)

// String returns the mode as redirect_dir= spells it.
func (m RedirectMode) String() string {
	switch m {
	case RedirectFollow:
		return "follow"
	case RedirectOff:
		return "off"
	case RedirectNoFollow:
		return "nofollow"
	}
	return "on"
}

// creates reports whether renames of merged directories write redirects.
func (m RedirectMode) creates() bool { return m == RedirectOn }

// follows reports whether lookups follow redirects.
func (m RedirectMode) follows() bool { return m != RedirectNoFollow }
