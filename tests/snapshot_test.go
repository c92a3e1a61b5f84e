package tests

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// This file holds tree snapshots: what is recorded about every object
// below a directory, how two snapshots are compared and printed, and which
// xattrs count in a merged view and in an upper directory.

// node is what a snapshot records about one object.
type node struct {
	Type   string // file, dir, symlink, fifo, char, block, socket
	Perm   uint32 // mode without the type bits (07777)
	UID    uint32
	GID    uint32
	Size   int64  // not for directories
	Nlink  uint64 // not for directories
	Rdev   uint64 // char and block devices
	Mtime  int64  // ns since the epoch
	Ctime  int64  // ns since the epoch; compared only in strict mode
	Data   string // file content: literal when short, else length and sha256
	Target string // symlink target
	Xattrs map[string]string
	Err    string // anything odd found while reading the object
	// Dino lists the entries of a directory whose d_ino is not their
	// st_ino (snapOpts.checkDino). Not compared by diffTrees: the kernel
	// does not keep this promise for merged subdirectories; unionfuse does.
	Dino string
}

// tree maps slash-separated paths relative to the root ("." is the root)
// to what is there.
type tree map[string]*node

// snapOpts says what a snapshot records.
type snapOpts struct {
	// keepXattr decides which xattr names are recorded; nil records all.
	keepXattr func(name string) bool
	// checkDino records in node.Dino the directory entries whose d_ino
	// differs from the st_ino lstat reports.
	checkDino bool
}

// snapshot walks root without following symlinks and records every object.
// Directory listings that repeat a name, or name something lstat cannot
// find, are recorded as Err on the directory.
func snapshot(root string, o snapOpts) (tree, error) {
	tr := tree{}
	var walk func(rel string) error
	walk = func(rel string) error {
		p := filepath.Join(root, rel)
		n, st, err := readNode(p, o)
		if err != nil {
			return err
		}
		tr[rel] = n
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil
		}
		ents, err := readDirents(p)
		if err != nil {
			n.Err += fmt.Sprintf("readdir: %v; ", err)
			return nil
		}
		seen := map[string]bool{}
		for _, e := range ents {
			if seen[e.name] {
				n.Err += fmt.Sprintf("readdir lists %q twice; ", e.name)
				continue
			}
			seen[e.name] = true
		}
		for _, e := range ents {
			child := e.name
			if rel != "." {
				child = rel + "/" + e.name
			}
			var cst unix.Stat_t
			if err := unix.Lstat(filepath.Join(root, child), &cst); err != nil {
				n.Err += fmt.Sprintf("readdir lists %q but lstat: %v; ", e.name, err)
				continue
			}
			if o.checkDino && cst.Ino != e.ino {
				n.Dino += fmt.Sprintf("%q: d_ino %d != st_ino %d; ", e.name, e.ino, cst.Ino)
			}
			if e.typ != unix.DT_UNKNOWN && e.typ != dtOf(cst.Mode) {
				n.Err += fmt.Sprintf("%q: d_type %d != type of st_mode %o; ", e.name, e.typ, cst.Mode)
			}
			if err := walk(child); err != nil {
				return err
			}
		}
		return nil
	}
	return tr, walk(".")
}

// readNode records the object at p.
func readNode(p string, o snapOpts) (*node, *unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, nil, err
	}
	n := &node{
		Type:  typeName(st.Mode),
		Perm:  st.Mode &^ unix.S_IFMT,
		UID:   st.Uid,
		GID:   st.Gid,
		Mtime: st.Mtim.Nano(),
		Ctime: st.Ctim.Nano(),
	}
	if n.Type != "dir" {
		n.Size = st.Size
		n.Nlink = uint64(st.Nlink)
	}
	switch n.Type {
	case "file":
		data, err := readFileNoFollow(p)
		if err != nil {
			n.Err += fmt.Sprintf("read: %v; ", err)
		}
		n.Data = summarize(data)
	case "symlink":
		target, err := readlink(p)
		if err != nil {
			n.Err += fmt.Sprintf("readlink: %v; ", err)
		}
		n.Target = target
	case "char", "block":
		n.Rdev = st.Rdev
	}
	xs, err := listXattrs(p)
	if err != nil {
		n.Err += fmt.Sprintf("listxattr: %v; ", err)
	}
	for k, v := range xs {
		if o.keepXattr == nil || o.keepXattr(k) {
			if n.Xattrs == nil {
				n.Xattrs = map[string]string{}
			}
			n.Xattrs[k] = v
		}
	}
	return n, &st, nil
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFCHR:
		return "char"
	case unix.S_IFBLK:
		return "block"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("type%o", mode&unix.S_IFMT)
}

func dtOf(mode uint32) uint8 {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return unix.DT_REG
	case unix.S_IFDIR:
		return unix.DT_DIR
	case unix.S_IFLNK:
		return unix.DT_LNK
	case unix.S_IFIFO:
		return unix.DT_FIFO
	case unix.S_IFCHR:
		return unix.DT_CHR
	case unix.S_IFBLK:
		return unix.DT_BLK
	case unix.S_IFSOCK:
		return unix.DT_SOCK
	}
	return unix.DT_UNKNOWN
}

// summarize renders file content for a diff: short content literally,
// longer content as its length and hash.
func summarize(data []byte) string {
	if len(data) <= 48 {
		return fmt.Sprintf("%q", data)
	}
	return fmt.Sprintf("%d bytes %q... sha256:%x", len(data), data[:16], sha256.Sum256(data))
}

func readFileNoFollow(p string) ([]byte, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

func readlink(p string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Readlink(p, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// listXattrs returns every xattr of p (not following symlinks).
func listXattrs(p string) (map[string]string, error) {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		return nil, err
	}
	buf := make([]byte, sz*2)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		v, err := getXattr(p, name)
		if err != nil {
			out[name] = fmt.Sprintf("<getxattr: %v>", err)
			continue
		}
		out[name] = v
	}
	return out, nil
}

func getXattr(p, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) && len(buf) < 1<<20 {
			buf = make([]byte, len(buf)*8)
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

type dirent struct {
	name string
	ino  uint64
	typ  uint8
}

// readDirents lists dir with getdents64, keeping d_ino and d_type.
func readDirents(dir string) ([]dirent, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var out []dirent
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return out, err
		}
		if n == 0 {
			break
		}
		for off := 0; off < n; {
			// struct linux_dirent64 { u64 ino; s64 off; u16 reclen; u8 type; char name[]; }
			rec := buf[off:n]
			ino := binary.NativeEndian.Uint64(rec[0:8])
			reclen := int(binary.NativeEndian.Uint16(rec[16:18]))
			typ := rec[18]
			name := rec[19:reclen]
			if i := strings.IndexByte(string(name), 0); i >= 0 {
				name = name[:i]
			}
			if s := string(name); s != "." && s != ".." {
				out = append(out, dirent{name: s, ino: ino, typ: typ})
			}
			off += reclen
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// cmpOpts says which fields a tree comparison looks at.
type cmpOpts struct {
	// strict compares every recorded field, times included (for "this
	// directory was not touched at all").
	strict bool
	// mtimeCutoff: outside strict mode, mtimes are compared when either
	// side is older than this (set by a layer builder or by utimensat, so
	// deterministic); times after it are "now" and differ between runs.
	mtimeCutoff time.Time
	// noNlink leaves out the link count of non-directories.
	noNlink bool
}

// nowForMtimes returns the cutoff after which mtimes count as "now" for a
// comparison starting now (cmpOpts.mtimeCutoff). Filesystems stamp files
// with the kernel's coarse clock, which lags time.Now() by up to a tick:
// a file changed in the first milliseconds would look older than "now"
// and be compared. A second of margin is far below the deterministic
// times the tests set (layer builds, utimensat).
func nowForMtimes() time.Time { return time.Now().Add(-time.Second) }

// diffTrees lists the differences between want and got, one line each,
// sorted by path.
func diffTrees(want, got tree, o cmpOpts) []string {
	var out []string
	paths := map[string]bool{}
	for p := range want {
		paths[p] = true
	}
	for p := range got {
		paths[p] = true
	}
	for _, p := range sortedKeys(paths) {
		w, g := want[p], got[p]
		switch {
		case g == nil:
			out = append(out, fmt.Sprintf("%s: missing (want %s)", p, w.brief()))
		case w == nil:
			out = append(out, fmt.Sprintf("%s: unexpected %s", p, g.brief()))
		default:
			for _, d := range diffNodes(w, g, o) {
				out = append(out, p+": "+d)
			}
		}
	}
	return out
}

// diffNodes lists the fields in which got differs from want.
func diffNodes(w, g *node, o cmpOpts) []string {
	var out []string
	add := func(field string, wv, gv any) {
		out = append(out, fmt.Sprintf("%s want %v, got %v", field, wv, gv))
	}
	if w.Type != g.Type {
		add("type", w.Type, g.Type)
		return out
	}
	if w.Perm != g.Perm {
		add("mode", fmt.Sprintf("%04o", w.Perm), fmt.Sprintf("%04o", g.Perm))
	}
	if w.UID != g.UID || w.GID != g.GID {
		add("owner", fmt.Sprintf("%d:%d", w.UID, w.GID), fmt.Sprintf("%d:%d", g.UID, g.GID))
	}
	if w.Size != g.Size {
		add("size", w.Size, g.Size)
	}
	if w.Nlink != g.Nlink && !o.noNlink && w.Type != "char" {
		add("nlink", w.Nlink, g.Nlink)
	}
	if w.Rdev != g.Rdev {
		add("rdev", fmt.Sprintf("%d,%d", unix.Major(w.Rdev), unix.Minor(w.Rdev)), fmt.Sprintf("%d,%d", unix.Major(g.Rdev), unix.Minor(g.Rdev)))
	}
	if w.Data != g.Data {
		add("content", w.Data, g.Data)
	}
	if w.Target != g.Target {
		add("symlink target", fmt.Sprintf("%q", w.Target), fmt.Sprintf("%q", g.Target))
	}
	if fmt.Sprint(w.Xattrs) != fmt.Sprint(g.Xattrs) {
		add("xattrs", fmtXattrs(w.Xattrs), fmtXattrs(g.Xattrs))
	}
	if w.Err != g.Err {
		add("oddities", fmt.Sprintf("%q", w.Err), fmt.Sprintf("%q", g.Err))
	}
	cut := o.mtimeCutoff.UnixNano()
	// A whiteout's times say nothing (the kernel may move an old whiteout
	// into place with RENAME_EXCHANGE where unionfuse makes a new one).
	whiteout := w.Type == "char" && w.Rdev == 0 && g.Rdev == 0
	if w.Mtime != g.Mtime && (o.strict || (!whiteout && (w.Mtime < cut || g.Mtime < cut))) {
		add("mtime", fmtTime(w.Mtime), fmtTime(g.Mtime))
	}
	if o.strict && w.Ctime != g.Ctime {
		add("ctime", fmtTime(w.Ctime), fmtTime(g.Ctime))
	}
	return out
}

func fmtXattrs(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%q", k, m[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func fmtTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000000000")
}

func (n *node) brief() string {
	switch n.Type {
	case "file":
		return fmt.Sprintf("file %04o %s", n.Perm, n.Data)
	case "symlink":
		return fmt.Sprintf("symlink -> %q", n.Target)
	case "char", "block":
		return fmt.Sprintf("%s %04o %d,%d", n.Type, n.Perm, unix.Major(n.Rdev), unix.Minor(n.Rdev))
	}
	return fmt.Sprintf("%s %04o", n.Type, n.Perm)
}

// dinoErrors lists the directories of tr whose entries' d_ino differ
// from their st_ino.
func dinoErrors(tr tree) []string {
	var out []string
	for _, p := range sortedKeys(tr) {
		if tr[p].Dino != "" {
			out = append(out, p+": "+tr[p].Dino)
		}
	}
	return out
}

// mustSnapshot is snapshot that fails t on error.
func mustSnapshot(t testing.TB, root string, o snapOpts) tree {
	t.Helper()
	tr, err := snapshot(root, o)
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return tr
}

// ---- What the merged view and the upper directory are compared on ----

// mergedXattr keeps every xattr name the merged view shows: the overlay's
// private trusted.overlay.* names must be hidden there, so showing one is a
// difference like any other.
func mergedXattr(string) bool { return true }

// upperXattr keeps the xattrs compared in an upper directory. It compares
// everything, including the overlay's own format — trusted.overlay.opaque
// (opaque directories) and trusted.overlay.whiteout (xattr whiteouts) —
// except the kernel's private bookkeeping, which unionfuse is not asked to
// reproduce because nothing in the merged view depends on it here:
//   - trusted.overlay.origin: the file handle of the lower object a copy-up
//     came from; the kernel uses it for st_ino/d_ino across copy-up and for
//     index/NFS export (off).
//   - trusted.overlay.impure: marks an upper directory holding copied-up or
//     renamed children, so the kernel knows to fix up d_ino in readdir.
//   - trusted.overlay.uuid: the upper root's filesystem UUID (uuid=auto),
//     used to validate origin file handles.
//   - trusted.overlay.metacopy, .upper, .protattr: written only with
//     metacopy=on, index=on (on WORK/index, not compared) or for
//     immutable/append-only files (chattr), none of which this suite uses;
//     they are ignored so that a kernel writing them never reads as
//     unionfuse's fault.
//
// trusted.overlay.redirect (directory renames, redirect_dir=on) and
// trusted.overlay.nlink (hard links, index=on) are compared.
func upperXattr(name string) bool {
	switch name {
	case "trusted.overlay.origin", "trusted.overlay.impure", "trusted.overlay.uuid",
		"trusted.overlay.metacopy",
		"trusted.overlay.upper", "trusted.overlay.protattr":
		return false
	}
	return true
}
