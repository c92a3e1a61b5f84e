package cowcache

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"

	"github.com/dustin/go-humanize"
	"github.com/unionfuse/unionfuse/internal/dirwalk"
	"github.com/unionfuse/unionfuse/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// Moving an upper directory into the store (issue 16), as Docker's
// overlay2 and containerd's snapshotters commit: the upper directory of a
// build step's container becomes the new layer's diff/ by a rename, instead
// of being packed into a tarball and unpacked again file by file with an
// fsync each. It is already in the kernel's overlay format; what the
// layer format adds is done in place:
//
//  1. Pack: the upper is walked once, read only, and its tarball (the very
//     bytes WriteUpperTar writes, with the same refusals: a file named
//     .wh.NAME, the size cap) streams into the DiffID's hash and into the
//     layer's blob, which save and push serve. The walk notes what the
//     layer format needs changed (a fixup) and the layer's size. An error
//     here leaves the upper as it was.
//  2. Move: the upper is renamed to the pending layer's diff/ (tmp/<name>/,
//     held by the pending layer's lock). From here on it belongs to the
//     pending layer: a crash leaves debris under tmp/ that the next writer
//     removes, an error drops it with the pending layer.
//  3. Convert, in the moved tree, through directory descriptors beneath its
//     root without following symbolic links: xattr whiteouts become
//     character devices 0/0, opaque directories carry the store's opaque
//     xattr (trusted or user, Store.UserXattr) and no other overlay-private
//     xattr is left (origin, impure, redirect, metacopy, opaque "x"),
//     metacopy files get their data from the lower layers, sockets go, and
//     the root gets the mode and owner of a prepared layer. Directories
//     keep their times. Every change here leaves the tarball of the tree
//     as it was packed: the DiffID describes the layer.
//  4. Sync: one syncfs(2) of the store's filesystem makes the layer and its
//     blob durable, instead of an fsync per file.
//
// Then the pending layer is committed as any other (Commit, AddImage): the
// rename to layers/<ChainID> and the committed marker written last, so a
// layer under its final name is complete or is debris.

// errCannotMove reports an upper directory that cannot be renamed into the
// store (another filesystem, a mount point, no permission to move it); the
// caller copies it instead. The upper is left as it was.
//
// The caller is a build step; `unionfuse commit` never moves: its
// container keeps its layer (runner.Commit).
var errCannotMove = errors.New("the upper directory cannot be moved into the store")

// moveHook, when not nil, is called at each step of moveUpper with its
// name ("packed", "moved", "converting", "synced"): tests end the process
// there to see what a crash leaves.
var moveHook func(step string)

func moveStep(step string) {
	if moveHook != nil {
		moveHook(step)
	}
}

// moveUpper fills the pending layer p, which must be fresh, by moving the
// overlay upper directory dir (unused: no mount, no process writing in it)
// to its diff/ and converting it in place. lowers are the layers below,
// top first, where metacopy files find their data. On success dir is
// gone; on errCannotMove it is left as it was.
func (p *Pending) moveUpper(dir string, userXattr bool, lowers []string) (Unpacked, error) {
	if p.unpacked != nil {
		return Unpacked{}, errors.New("move upper: a layer was applied already")
	}
	var st, tmp unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return Unpacked{}, fmt.Errorf("upper directory: %w", &os.PathError{Op: "lstat", Path: dir, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return Unpacked{}, errCannotMove // a symbolic link: copied through it, as before
	}
	if err := unix.Stat(p.path(), &tmp); err != nil {
		return Unpacked{}, fmt.Errorf("move upper: %w", err)
	}
	if st.Dev != tmp.Dev {
		return Unpacked{}, errCannotMove
	}
	plan, u, err := p.packUpper(dir, lowers)
	if err != nil {
		return Unpacked{}, err
	}
	moveStep("packed")
	if err := os.Remove(p.Dir()); err != nil {
		return Unpacked{}, fmt.Errorf("move upper: %w", err)
	}
	if err := unix.Rename(dir, p.Dir()); err != nil {
		if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return Unpacked{}, errCannotMove
		}
		return Unpacked{}, fmt.Errorf("move upper directory %s: %w", dir, err)
	}
	moveStep("moved")
	root, err := unix.Open(p.Dir(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return Unpacked{}, fmt.Errorf("move upper: %w", err)
	}
	defer unix.Close(root)
	if err := plan.apply(root, ovlfmt.For(userXattr)); err != nil {
		return Unpacked{}, fmt.Errorf("move upper directory %s: %w", dir, err)
	}
	if err := unix.Syncfs(root); err != nil {
		return Unpacked{}, fmt.Errorf("move upper: syncfs: %w", err)
	}
	moveStep("synced")
	p.unpacked = &u
	p.diffID, p.size, p.finished = u.DiffID, plan.size, true
	return u, nil
}

// packUpper writes the tarball of the upper directory dir to the pending
// layer's blob, unsynced, and returns its description with the plan of
// the conversion.
func (p *Pending) packUpper(dir string, lowers []string) (*movePlan, Unpacked, error) {
	blob, err := os.OpenFile(p.blobPath(), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, Unpacked{}, fmt.Errorf("move upper: %w", err)
	}
	defer blob.Close()
	bw := bufio.NewWriterSize(blob, 256<<10)
	h := sha256.New()
	max := p.s.MaxLayerSize
	if max <= 0 {
		max = DefaultMaxLayerSize
	}
	cw := &cappedWriter{w: io.MultiWriter(h, bw), max: max}
	plan := &movePlan{upper: dir, lowers: lowers, links: map[uint64]bool{}}
	if err := writeUpperTar(cw, dir, lowers, plan.note); err != nil {
		return nil, Unpacked{}, err
	}
	if err := bw.Flush(); err != nil {
		return nil, Unpacked{}, fmt.Errorf("move upper: %w", err)
	}
	d := Digest("sha256:" + hex.EncodeToString(h.Sum(nil)))
	return plan, Unpacked{Digest: d, Size: cw.n, DiffID: d, Compression: Uncompressed}, nil
}

// cappedWriter fails with ErrTooLarge once more than max bytes are written
// through it (the cap ApplyTar puts on what it unpacks).
type cappedWriter struct {
	w   io.Writer
	n   int64
	max int64
}

func (c *cappedWriter) Write(b []byte) (int, error) {
	if c.n+int64(len(b)) > c.max {
		return 0, fmt.Errorf("%w: its tarball is larger than %s", ErrTooLarge, humanize.IBytes(uint64(c.max)))
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// movePlan is what packing an upper found to convert, and the layer's
// size as DirSize will count it once converted.
type movePlan struct {
	upper  string
	lowers []string
	fixups []fixup // in the walk's order: a directory before what it holds
	size   int64
	links  map[uint64]bool // inodes with more than one name, counted once
}

// fixup is the conversion of one file of the upper to the layer format.
type fixup struct {
	path string // from the root, slash-separated
	// drop lists the xattrs to remove: overlay-private ones (all of them
	// on a whiteout).
	drop []string
	// opaque: set the store's opaque xattr to "y".
	opaque bool
	// whiteout: an xattr whiteout, replaced by a character device 0/0
	// owned by uid:gid.
	whiteout bool
	uid, gid uint32
	// socket: removed (sockets do not go into layers).
	socket bool
	// metacopy, when set, is the lower file whose size bytes of data the
	// metacopy file takes; its times (atime, mtime) are kept.
	metacopy     string
	size         int64
	ino          uint64
	atime, mtime unix.Timespec
}

// note is writeUpperTar's report of the entry e written with its xattrs.
func (m *movePlan) note(e *dirwalk.Entry, xattrs map[string]string) error {
	st := &e.Stat
	typ := st.Mode & unix.S_IFMT
	if typ == unix.S_IFREG || typ == unix.S_IFLNK {
		if st.Nlink <= 1 || !m.links[st.Ino] {
			m.size += st.Size // a metacopy file's too: it will hold its data
		}
		if st.Nlink > 1 {
			m.links[st.Ino] = true
		}
	}
	f := fixup{path: e.Path}
	_, wt := xattrs[ovlfmt.Trusted.Whiteout]
	_, wu := xattrs[ovlfmt.User.Whiteout]
	switch {
	case typ == unix.S_IFSOCK:
		f.socket = true
	case typ == unix.S_IFCHR && ovlfmt.IsWhiteout(st):
		f.drop = sortedKeys(xattrs) // a whiteout is bare in a layer
	case typ == unix.S_IFREG && ovlfmt.MayBeXattrWhiteout(st) && (wt || wu):
		f.whiteout, f.uid, f.gid = true, st.Uid, st.Gid
	default:
		f.opaque = typ == unix.S_IFDIR && (xattrs[ovlfmt.Trusted.Opaque] == ovlfmt.Yes || xattrs[ovlfmt.User.Opaque] == ovlfmt.Yes)
		for _, k := range sortedKeys(xattrs) {
			if ovlfmt.IsPrivateXattr(k) {
				f.drop = append(f.drop, k)
			}
		}
		if typ == unix.S_IFREG && st.Size > 0 && st.Blocks*512 < st.Size && isMetacopy(e.ProcPath()) {
			src, err := metacopySource(m.upper, e.Path, m.lowers)
			if err != nil {
				return err
			}
			f.metacopy, f.size, f.ino, f.atime, f.mtime = src, st.Size, st.Ino, st.Atim, st.Mtim
		}
	}
	if f.socket || f.whiteout || f.opaque || f.metacopy != "" || len(f.drop) > 0 {
		m.fixups = append(m.fixups, f)
	}
	return nil
}

// apply converts the moved upper open as root in place (x names the
// store's opaque xattr). Directories whose entries change keep their
// times.
func (m *movePlan) apply(root int, x *ovlfmt.Xattrs) error {
	if err := fixRoot(root); err != nil {
		return err
	}
	d := &fixDir{root: root, fd: -1}
	defer d.close()
	filled := map[uint64]bool{} // metacopy files written, by inode
	for i, f := range m.fixups {
		if i == 1 {
			moveStep("converting")
		}
		if err := d.open(path.Dir(f.path)); err != nil {
			return err
		}
		if err := d.fix(f, x, filled); err != nil {
			return fmt.Errorf("/%s: %w", f.path, err)
		}
	}
	return d.close()
}

// fixRoot gives the root of a moved upper what a prepared layer's diff/
// has: mode 0755, this process's owner, no xattrs (none of it is in the
// tarball, whatever the container did to its /). An xattr of the user's
// that cannot be removed (a security module's label) may stay.
func fixRoot(root int) error {
	p := fdPath(root, "")
	xattrs, err := listXattrs(p, "/")
	if err != nil {
		return err
	}
	for _, k := range sortedKeys(xattrs) {
		err := unix.Lremovexattr(p, k)
		if err != nil && !errors.Is(err, unix.ENODATA) && ovlfmt.IsPrivateXattr(k) {
			return fmt.Errorf("/: remove xattr %s: %w", k, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(root, &st); err != nil {
		return err
	}
	if st.Mode&0o7777 != 0o755 {
		if err := unix.Fchmod(root, 0o755); err != nil {
			return fmt.Errorf("/: %w", err)
		}
	}
	if uid, gid := os.Geteuid(), os.Getegid(); int(st.Uid) != uid || int(st.Gid) != gid {
		if err := unix.Fchown(root, uid, gid); err != nil {
			return fmt.Errorf("/: %w", err)
		}
	}
	return nil
}

// fixDir is the directory of the moved upper being converted: open
// beneath the root, with its times as they were before its entries
// changed.
type fixDir struct {
	root    int
	fd      int
	rel     string
	st      unix.Stat_t
	changed bool // entries were replaced or removed: restore the times
}

// open makes rel (from the root) the current directory.
func (d *fixDir) open(rel string) error {
	if d.fd >= 0 && d.rel == rel {
		return nil
	}
	if err := d.close(); err != nil {
		return err
	}
	how := &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(d.root, rel, how)
	if err != nil {
		return wrapOpen(rel, err)
	}
	if err := unix.Fstat(fd, &d.st); err != nil {
		unix.Close(fd)
		return &os.PathError{Op: "fstat", Path: rel, Err: err}
	}
	d.fd, d.rel, d.changed = fd, rel, false
	return nil
}

// close restores the times of the current directory if its entries
// changed, and closes it.
func (d *fixDir) close() error {
	if d.fd < 0 {
		return nil
	}
	fd := d.fd
	d.fd = -1
	defer unix.Close(fd)
	if d.changed {
		if err := unix.UtimesNanoAt(fd, ".", []unix.Timespec{d.st.Atim, d.st.Mtim}, 0); err != nil {
			return fmt.Errorf("/%s: restore times: %w", d.rel, err)
		}
	}
	return nil
}

// fix applies f to its file in the current directory; filled records the
// metacopy data written (a hard-linked metacopy file is filled once).
func (d *fixDir) fix(f fixup, x *ovlfmt.Xattrs, filled map[uint64]bool) error {
	name := path.Base(f.path)
	switch {
	case f.socket:
		d.changed = true
		return unix.Unlinkat(d.fd, name, 0)
	case f.whiteout:
		d.changed = true
		if err := unix.Unlinkat(d.fd, name, 0); err != nil {
			return err
		}
		if err := ovlfmt.MakeWhiteout(d.fd, name); err != nil {
			return fmt.Errorf("whiteout: mknod (char 0/0): %w", err)
		}
		if os.Geteuid() == 0 && (f.uid != 0 || f.gid != 0) {
			return unix.Fchownat(d.fd, name, int(f.uid), int(f.gid), unix.AT_SYMLINK_NOFOLLOW)
		}
		return nil
	}
	p := fdPath(d.fd, name)
	for _, k := range f.drop {
		if f.opaque && k == x.Opaque {
			continue // set below
		}
		if err := unix.Lremovexattr(p, k); err != nil && !errors.Is(err, unix.ENODATA) {
			return fmt.Errorf("remove xattr %s: %w", k, err)
		}
	}
	if f.opaque {
		if err := unix.Lsetxattr(p, x.Opaque, []byte(ovlfmt.Yes), 0); err != nil {
			return fmt.Errorf("set %s: %w", x.Opaque, err)
		}
	}
	if f.metacopy != "" && !filled[f.ino] {
		filled[f.ino] = true
		return fillMetacopy(d.fd, name, f)
	}
	return nil
}

// fillMetacopy writes the data of the metacopy file name (in the directory
// dirfd) from its lower file, keeping its times.
func fillMetacopy(dirfd int, name string, f fixup) error {
	src, err := os.Open(f.metacopy)
	if err != nil {
		return err
	}
	defer src.Close()
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: f.path, Err: err}
	}
	dst := os.NewFile(uintptr(fd), f.path)
	defer dst.Close()
	if _, err := io.Copy(dst, io.LimitReader(src, f.size)); err != nil {
		return fmt.Errorf("metacopy data: %w", err)
	}
	if err := unix.UtimesNanoAt(dirfd, name, []unix.Timespec{f.atime, f.mtime}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("restore times: %w", err)
	}
	return dst.Close()
}

// fdPath names name in the directory open as fd for the calls without an
// *at form (lgetxattr and friends); "" names the directory itself.
func fdPath(fd int, name string) string {
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	if name != "" {
		p += "/" + name
	}
	return p
}
