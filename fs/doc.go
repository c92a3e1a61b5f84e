// Package fs implements the overlay filesystem served over FUSE: lookup
// through an upper layer and a stack of read-only lower layers, copy-up on
// write, whiteouts and opaque directories, in the kernel overlayfs format,
// so an upper directory written here mounts with `mount -t overlay` and the
// other way round.
//
// # Layers
//
// Config.Lowers are given top first, as in lowerdir=. Each layer's root is
// opened once, before mounting (layer.fd); every later access is an *at
// system call relative to that descriptor, or goes through
// /proc/self/fd/N for calls without an *at form (xattrs, truncate). So the
// union can even be mounted on top of one of its own lower directories.
// Inside the overlay, layers are numbered: 0 is the upper layer (when there
// is one), then the lowers top first.
//
// # What a node knows
//
// A node is identified by the inode number it reports and a generation
// (StableAttr.Ino and Gen: nodeKey). The node tree (tree.go) keeps one
// node per identity, so the node's state — the layers holding it, top
// first (an entry) — is kept on the node itself (node.state), and is
// replaced on every lookup and after a copy-up. A directory lists every
// layer it merges; a non-directory exactly one. Paths are not stored: a
// node's path is its position in the tree (node.rel), which the requests
// that change names keep right (bridge.go). It is its path in every
// layer, except below a renamed directory, whose lower paths are recorded
// (redirect.go). The tree and the request serving over it are unionfuse's
// own, on go-fuse's raw protocol API: go-fuse's node API cost about twice
// the memory per name.
//
// # Lookup and readdir
//
// A name is resolved through the directory's layers top down (resolve,
// in lookup.go): a whiteout (char device 0/0, or a zero-size regular
// file with the overlay.whiteout xattr) hides the name and everything
// below it; a non-directory hides everything below it; directories merge
// until one is opaque (overlay.opaque=y). A directory listing applies the
// same rules to the union of the layers' entries (mergedEntries). The
// kernel keeps listings in its page cache and asks for one only when it
// has none, without OPENDIR (dirserver.go); a listing is taken when its
// first chunk is asked for and kept until its last, so positions hold.
// d_ino in a listing equals st_ino.
//
// # Inode numbers
//
// An object reports the inode number of its topmost copy; objects on
// another filesystem than the first layer's get that filesystem's index in
// the top 8 bits, as the kernel's xino does. A copy-up records the new
// upper inode against the old number (overlay.copiedUp), so st_ino does
// not change for the life of the mount; and, as the kernel, it writes the
// lower original's file handle in overlay.origin on the copy and marks the
// parent overlay.impure, so the number holds in later mounts too, with
// unionfuse or the kernel (origin.go).
//
// # Copy-up and atomicity
//
// Changing an object that lives in a lower layer first copies it up
// (copyUp): its parents first, then the object, built under a temporary
// "#..." name in WORK/work with data (FICLONE, else copy_file_range, with
// holes kept via SEEK_DATA/SEEK_HOLE), xattrs, owner, mode and times, and
// only then renamed into upper. A crash leaves at most a temporary in
// WORK/work, which the next mount deletes. Whiteouts are hard links to one
// shared whiteout inode in WORK/work, as the kernel makes them; a name is
// replaced by a whiteout with rename (a directory: RENAME_EXCHANGE), so the
// name is never absent and never half-there. A directory created where a
// whiteout stood is marked opaque before it is swapped in.
//
// # Locking
//
// overlay.mu orders namespace changes: lookups, getattr, readdir and
// read-only opens take it shared; copy-up, create, remove, rename and
// setattr take it exclusively; RENAME holds it across the update of the
// node tree too, from which every path is computed (rename.go). File
// data I/O on open handles takes no
// overlay lock. overlay.emu guards the overlay's maps of node and handle
// state (its comment lists them) and is held only while they are used.
// No lock is held while waiting for the kernel.
//
// # Kernel caches
//
// Entries and attributes are cached by the kernel for an hour; every
// change to the merged view is made through this server, which answers
// with fresh attributes, so the cache never serves a stale upper state.
// Where two kernel inodes name one object for a while (a hard-linked
// lower file copied up while open, a renewed passthrough node), a change
// through one drops the cached attributes of the other (alias.go).
// The kernel would keep every name it has looked up until memory
// pressure, and the tree a node for each: past Config.MaxNodes the least
// recently looked-up ones it is not using are pruned (FUSE_NOTIFY_PRUNE),
// and an idle mount keeps only what is in use (prune.go).
// Permissions are checked by the kernel (default_permissions) against the
// attributes reported here. POSIX and BSD locks are left to the kernel
// (local to the mount), so a lock taken on a file opened read-only before
// a copy-up still conflicts with one taken after.
//
// # Decisions
//
//   - A lazy lower layer (Config.Fetchers, lazy.go) keeps its whole tree
//     on disk with holes where data is missing, rather than answering
//     lookups from a table of contents in memory: every metadata path of
//     the union stays the same *at code for every layer, and a layer
//     whose data has all arrived is an ordinary directory. Only reads,
//     SEEK_DATA/SEEK_HOLE and copy-up wait for data, and handles on such
//     layers never use passthrough.
//   - Renaming a directory that has lower content moves its upper copy
//     with a redirect to its lower content, as the kernel with
//     redirect_dir=on (redirect.go); Config.Redirect selects the kernel's
//     other modes. Unlike the kernel, rootless userxattr mounts follow and
//     write redirects as well: the server runs as the user, who can read
//     every layer anyway, so a redirect reveals nothing. As root, a
//     userxattr mount does neither, as the kernel (redirectMode).
//   - With Config.Metacopy (metacopy=on), a change of metadata alone
//     copies up a metacopy file, whose data stays below until the first
//     open for writing (metacopy.go); data-only lower layers are reached
//     only through the redirects of metacopy files (datalayer.go). Unlike
//     the kernel, hard-linked lower files copied up through the index
//     (index=on) always take their data along.
//   - trusted.overlay.* names set through the mount are stored escaped as
//     trusted.overlay.overlay.*, as Linux 6.7+ does; the overlay's own
//     attributes are never shown or copied up.
//   - mknod of a char device 0/0 is refused (EPERM): it would read back as
//     a whiteout.
//   - The process changes GOMAXPROCS while it serves: one P beyond
//     go-fuse's readers while its unions are changed fast, the runtime's
//     own count otherwise, so that readers waiting on /dev/fuse keep their
//     Ps without every daemon paying for idle Ps' caches (procs.go).
//   - A read-only handle opened on a lower file switches to the upper copy
//     once the file is copied up, so readers see later writes — except
//     with FUSE passthrough (root, Linux 6.9+), where the kernel reads the
//     lower file directly: a descriptor opened before the copy-up keeps
//     reading the lower file, as on kernel overlayfs before Linux 4.19.
//     New opens see the upper copy. See passthrough.go.
//   - Lower layers may hold AUFS whiteouts (.wh.NAME, .wh..wh..opq), as
//     containers-storage keeps them for mount programs; see aufs.go.
//   - Attribute and xattr changes go through an open descriptor of the
//     node when there is one, so they work on unlinked files too.
//   - Hard links between lower files are not kept across copy-up (the
//     kernel without index=on does not keep them either), unless
//     Config.Index (index=on) asks for it (index.go). Differences from
//     the kernel remain there, all from FUSE: until copied up, the names
//     of such a file are distinct kernel inodes, so rename(2) from one to
//     another is checked for permission by the kernel before the server
//     can say it is a no-op, and two names of a lower fifo are two pipes
//     (the kernel's index=on makes them one; as its index=off, a fifo
//     copied up while open is a new pipe for later opens); with
//     passthrough, a read-only descriptor of any name opened before
//     another name is written keeps reading the lower file.
package fs
