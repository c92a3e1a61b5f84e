package tests

import (
	"fmt"
	"math/rand/v2"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// This file holds the differential test's operations: what each does, how
// it is printed for a person to replay, and how they are drawn at random
// from the paths of the current tree.

// ---- Operations ----

// op is one operation, with every argument chosen up front so that it can
// be applied to both unions and replayed.
type op struct {
	Kind   string
	P, Q   string // paths relative to the union's root
	Mode   uint32
	Size   int64  // bytes to write, or the length to truncate to
	Off    int64  // pwrite offset
	Fill   uint64 // seed of the bytes written
	Flags  int
	UID    int
	GID    int
	Name   string // xattr name
	Value  string // xattr value, or symlink target
	Atime  unix.Timespec
	Mtime  unix.Timespec
	Follow bool // follow a final symlink (chown, utimens, setxattr)
	Slot   int  // which held file descriptor (hold and fd* operations)
	As     int  // run with this fsuid and fsgid (0: as root)
}

// nSlots is how many file descriptors a round holds open across operations.
const nSlots = 3

// fdSet holds a union's open file descriptors by slot; -1 is closed.
type fdSet [nSlots]int

func newFdSet() fdSet {
	var s fdSet
	for i := range s {
		s[i] = -1
	}
	return s
}

// closeAll closes every held descriptor (before unmounting).
func (s *fdSet) closeAll() {
	for i, fd := range s {
		if fd >= 0 {
			unix.Close(fd)
		}
		s[i] = -1
	}
}

// String renders o as a shell-like line a person can replay by hand.
func (o *op) String() string {
	if o.As != 0 {
		return fmt.Sprintf("[as uid:gid %d:%d] %s", o.As, o.As, o.str())
	}
	return o.str()
}

func (o *op) str() string {
	q := strconv.Quote
	switch o.Kind {
	case "hold":
		return fmt.Sprintf("fd%d = open %s %s (held open)", o.Slot, q(o.P), openFlagName(o.Flags))
	case "fdread":
		return fmt.Sprintf("pread fd%d 64KiB at %d", o.Slot, o.Off)
	case "fdwrite":
		return fmt.Sprintf("pwrite fd%d %d bytes at %d", o.Slot, o.Size, o.Off)
	case "fdstat":
		return fmt.Sprintf("fstat fd%d", o.Slot)
	case "fdtrunc":
		return fmt.Sprintf("ftruncate fd%d %d", o.Slot, o.Size)
	case "fdchmod":
		return fmt.Sprintf("fchmod fd%d %04o", o.Slot, o.Mode)
	case "fdsetxattr":
		return fmt.Sprintf("fsetxattr fd%d %s=%q", o.Slot, o.Name, o.Value)
	case "tmpfile":
		return fmt.Sprintf("open %s O_TMPFILE mode %04o, write %d bytes, linkat to %s", q(o.P), o.Mode, o.Size, q(o.Q))
	case "fallocate":
		return fmt.Sprintf("fallocate %s mode=%s off=%d len=%d", q(o.P), fallocName(o.Flags), o.Off, o.Size)
	case "write":
		return fmt.Sprintf("write %s (O_CREAT|O_TRUNC, mode %04o) %d bytes", q(o.P), o.Mode, o.Size)
	case "append":
		return fmt.Sprintf("append %s (O_APPEND) %d bytes", q(o.P), o.Size)
	case "pwrite":
		return fmt.Sprintf("pwrite %s (O_WRONLY, no truncation) %d bytes at offset %d", q(o.P), o.Size, o.Off)
	case "excl":
		return fmt.Sprintf("open %s O_CREAT|O_EXCL mode %04o, write %d bytes", q(o.P), o.Mode, o.Size)
	case "truncate":
		return fmt.Sprintf("truncate %s %d", q(o.P), o.Size)
	case "mkdir", "mkfifo", "chmod":
		return fmt.Sprintf("%s %s %04o", o.Kind, q(o.P), o.Mode)
	case "rename", "link":
		return fmt.Sprintf("%s %s %s", o.Kind, q(o.P), q(o.Q))
	case "noreplace":
		return fmt.Sprintf("renameat2 %s %s RENAME_NOREPLACE", q(o.P), q(o.Q))
	case "exchange":
		return fmt.Sprintf("renameat2 %s %s RENAME_EXCHANGE", q(o.P), q(o.Q))
	case "symlink":
		return fmt.Sprintf("symlink %s %s  # %s -> %s", q(o.Value), q(o.P), o.P, o.Value)
	case "chown":
		return fmt.Sprintf("%s %s %d:%d", map[bool]string{true: "chown", false: "lchown"}[o.Follow], q(o.P), o.UID, o.GID)
	case "utimens":
		return fmt.Sprintf("utimensat %s atime=%s mtime=%s%s", q(o.P), fmtTimespec(o.Atime), fmtTimespec(o.Mtime),
			map[bool]string{true: "", false: " AT_SYMLINK_NOFOLLOW"}[o.Follow])
	case "setxattr":
		return fmt.Sprintf("%s %s %s=%q flags=%s", map[bool]string{true: "setxattr", false: "lsetxattr"}[o.Follow],
			q(o.P), o.Name, o.Value, xattrFlagName(o.Flags))
	case "removexattr", "getxattr":
		return fmt.Sprintf("l%s %s %s", o.Kind, q(o.P), o.Name)
	case "mknod0":
		return fmt.Sprintf("mknod %s c 0 0", q(o.P))
	}
	return fmt.Sprintf("%s %s", o.Kind, q(o.P))
}

func fmtTimespec(ts unix.Timespec) string {
	switch ts.Nsec {
	case unix.UTIME_NOW:
		return "UTIME_NOW"
	case unix.UTIME_OMIT:
		return "UTIME_OMIT"
	}
	return fmt.Sprintf("%d.%09d", ts.Sec, ts.Nsec)
}

func openFlagName(f int) string {
	switch f {
	case unix.O_RDONLY:
		return "O_RDONLY"
	case unix.O_RDWR:
		return "O_RDWR"
	case unix.O_WRONLY | unix.O_APPEND:
		return "O_WRONLY|O_APPEND"
	case unix.O_RDONLY | unix.O_TRUNC:
		return "O_RDONLY|O_TRUNC"
	}
	return fmt.Sprintf("%#o", f)
}

func fallocName(f int) string {
	switch f {
	case 0:
		return "0"
	case unix.FALLOC_FL_KEEP_SIZE:
		return "KEEP_SIZE"
	case unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE:
		return "PUNCH_HOLE|KEEP_SIZE"
	}
	return fmt.Sprint(f)
}

func xattrFlagName(f int) string {
	switch f {
	case unix.XATTR_CREATE:
		return "XATTR_CREATE"
	case unix.XATTR_REPLACE:
		return "XATTR_REPLACE"
	}
	return "0"
}

// fill returns n deterministic bytes for a write.
func fill(seed uint64, n int64) []byte {
	r := rand.New(rand.NewPCG(seed, 0xf111))
	b := make([]byte, n)
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789\n"
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return b
}

func errnoName(err error) string {
	if err == nil {
		return "ok"
	}
	if e, ok := err.(unix.Errno); ok {
		if n := unix.ErrnoName(e); n != "" {
			return n
		}
	}
	return err.Error()
}

// apply performs o below root, with the descriptors held in fds, and
// returns its outcome: "ok" or the errno's name, prefixed by the failing
// step of a multi-step operation, followed by what the operation observed
// (bytes read, size after a write ...).
func (o *op) apply(root string, fds *fdSet) string {
	if o.As == 0 {
		return o.do(root, fds)
	}
	// fsuid and fsgid are per thread: change them on this one only. Leaving
	// fsuid 0 also drops the filesystem capabilities (DAC override, fowner,
	// chown ...), so the operation is checked as that user's would be.
	runtime.LockOSThread()
	if err := unix.Setfsgid(o.As); err != nil {
		panic(err)
	}
	if err := unix.Setfsuid(o.As); err != nil {
		panic(err)
	}
	res := o.do(root, fds)
	unix.Setfsuid(0)
	unix.Setfsgid(0)
	if id, _ := unix.SetfsuidRetUid(-1); id == 0 {
		runtime.UnlockOSThread() // else the thread dies with the goroutine
	}
	return res
}

func (o *op) do(root string, fds *fdSet) string {
	if strings.HasPrefix(o.Kind, "fd") {
		if fds[o.Slot] < 0 {
			return "EBADF (nothing held)"
		}
		return o.fdOp(fds[o.Slot])
	}
	p := filepath.Join(root, o.P)
	q := filepath.Join(root, o.Q)
	const nb = unix.O_NONBLOCK | unix.O_CLOEXEC // O_NONBLOCK: a fifo never blocks (ENXIO)
	switch o.Kind {
	case "write":
		return writeAt(p, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|nb, o.Mode, -1, fill(o.Fill, o.Size))
	case "append":
		return writeAt(p, unix.O_WRONLY|unix.O_APPEND|nb, 0, -1, fill(o.Fill, o.Size))
	case "pwrite":
		return writeAt(p, unix.O_WRONLY|nb, 0, o.Off, fill(o.Fill, o.Size))
	case "excl":
		return writeAt(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|nb, o.Mode, -1, fill(o.Fill, o.Size))
	case "read":
		fd, err := unix.Open(p, unix.O_RDONLY|nb, 0)
		if err != nil {
			return "open:" + errnoName(err)
		}
		defer unix.Close(fd)
		var data []byte
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(fd, buf)
			if err != nil {
				return "read:" + errnoName(err)
			}
			if n == 0 {
				break
			}
			data = append(data, buf[:n]...)
		}
		return "ok " + summarize(data)
	case "truncate":
		return errnoName(unix.Truncate(p, o.Size))
	case "mkdir":
		return errnoName(unix.Mkdir(p, o.Mode))
	case "rmdir":
		return errnoName(unix.Rmdir(p))
	case "unlink":
		return errnoName(unix.Unlink(p))
	case "rename":
		return errnoName(unix.Rename(p, q))
	case "noreplace":
		return errnoName(unix.Renameat2(unix.AT_FDCWD, p, unix.AT_FDCWD, q, unix.RENAME_NOREPLACE))
	case "exchange":
		return errnoName(unix.Renameat2(unix.AT_FDCWD, p, unix.AT_FDCWD, q, unix.RENAME_EXCHANGE))
	case "symlink":
		return errnoName(unix.Symlink(o.Value, p))
	case "link":
		return errnoName(unix.Link(p, q))
	case "chmod":
		return errnoName(unix.Chmod(p, o.Mode))
	case "chown":
		if o.Follow {
			return errnoName(unix.Chown(p, o.UID, o.GID))
		}
		return errnoName(unix.Lchown(p, o.UID, o.GID))
	case "utimens":
		flags := unix.AT_SYMLINK_NOFOLLOW
		if o.Follow {
			flags = 0
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{o.Atime, o.Mtime}, flags); err != nil {
			return errnoName(err)
		}
		var st unix.Stat_t
		var err error
		if o.Follow {
			err = unix.Stat(p, &st)
		} else {
			err = unix.Lstat(p, &st)
		}
		if err != nil {
			return "stat:" + errnoName(err)
		}
		res := "ok"
		if o.Mtime.Nsec != unix.UTIME_NOW && o.Mtime.Nsec != unix.UTIME_OMIT {
			res += " mtime=" + fmtTimespec(st.Mtim)
		}
		if o.Atime.Nsec != unix.UTIME_NOW && o.Atime.Nsec != unix.UTIME_OMIT {
			res += " atime=" + fmtTimespec(st.Atim)
		}
		return res
	case "setxattr":
		if o.Follow {
			return errnoName(unix.Setxattr(p, o.Name, []byte(o.Value), o.Flags))
		}
		return errnoName(unix.Lsetxattr(p, o.Name, []byte(o.Value), o.Flags))
	case "removexattr":
		return errnoName(unix.Lremovexattr(p, o.Name))
	case "getxattr":
		v, err := getXattr(p, o.Name)
		if err != nil {
			return errnoName(err)
		}
		return fmt.Sprintf("ok %q", v)
	case "listxattr":
		xs, err := listXattrs(p)
		if err != nil {
			return errnoName(err)
		}
		return "ok " + fmtXattrs(xs)
	case "mkfifo":
		return errnoName(unix.Mkfifo(p, o.Mode))
	case "mknod0":
		return errnoName(unix.Mknod(p, unix.S_IFCHR|0o644, 0))
	case "readdir":
		ents, err := readDirents(p)
		if err != nil {
			return errnoName(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.name)
		}
		return "ok [" + strings.Join(names, " ") + "]"
	case "stat":
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return errnoName(err)
		}
		return "ok " + statSummary(&st)
	case "readlink":
		target, err := readlink(p)
		if err != nil {
			return errnoName(err)
		}
		return "ok " + strconv.Quote(target)
	case "hold":
		if fds[o.Slot] >= 0 {
			unix.Close(fds[o.Slot])
			fds[o.Slot] = -1
		}
		fd, err := unix.Open(p, o.Flags|nb, 0)
		if err != nil {
			return "open:" + errnoName(err)
		}
		fds[o.Slot] = fd
		return "ok"
	case "tmpfile":
		fd, err := unix.Open(p, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, o.Mode)
		if err != nil {
			return "open:" + errnoName(err)
		}
		defer unix.Close(fd)
		if _, err := unix.Write(fd, fill(o.Fill, o.Size)); err != nil {
			return "write:" + errnoName(err)
		}
		err = unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, q, unix.AT_SYMLINK_FOLLOW)
		return "linkat:" + errnoName(err)
	case "fallocate":
		fd, err := unix.Open(p, unix.O_WRONLY|nb, 0)
		if err != nil {
			return "open:" + errnoName(err)
		}
		defer unix.Close(fd)
		if err := unix.Fallocate(fd, uint32(o.Flags), o.Off, o.Size); err != nil {
			return "fallocate:" + errnoName(err)
		}
		var st unix.Stat_t
		unix.Fstat(fd, &st)
		return fmt.Sprintf("ok size=%d", st.Size)
	}
	panic("unknown op " + o.Kind)
}

// statSummary renders what a stat result is compared on: type, mode,
// owner and, for non-directories, size and link count.
func statSummary(st *unix.Stat_t) string {
	res := fmt.Sprintf("%s %04o %d:%d", typeName(st.Mode), st.Mode&^unix.S_IFMT, st.Uid, st.Gid)
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		res += fmt.Sprintf(" size=%d nlink=%d", st.Size, st.Nlink)
	}
	return res
}

// fdOp performs an operation on a held descriptor.
func (o *op) fdOp(fd int) string {
	switch o.Kind {
	case "fdread":
		buf := make([]byte, 64<<10)
		n, err := unix.Pread(fd, buf, o.Off)
		if err != nil {
			return errnoName(err)
		}
		return "ok " + summarize(buf[:n])
	case "fdwrite":
		if _, err := unix.Pwrite(fd, fill(o.Fill, o.Size), o.Off); err != nil {
			return errnoName(err)
		}
		return "ok"
	case "fdstat":
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return errnoName(err)
		}
		return "ok " + statSummary(&st)
	case "fdtrunc":
		return errnoName(unix.Ftruncate(fd, o.Size))
	case "fdchmod":
		return errnoName(unix.Fchmod(fd, o.Mode))
	case "fdsetxattr":
		return errnoName(unix.Fsetxattr(fd, o.Name, []byte(o.Value), 0))
	}
	panic("unknown op " + o.Kind)
}

// writeAt opens p with flags and writes data (at off, or sequentially when
// off < 0), reporting the size the file has afterwards.
func writeAt(p string, flags int, mode uint32, off int64, data []byte) string {
	fd, err := unix.Open(p, flags, mode)
	if err != nil {
		return "open:" + errnoName(err)
	}
	defer unix.Close(fd)
	if off >= 0 {
		_, err = unix.Pwrite(fd, data, off)
	} else if len(data) > 0 {
		_, err = unix.Write(fd, data)
	}
	if err != nil {
		return "write:" + errnoName(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "fstat:" + errnoName(err)
	}
	return fmt.Sprintf("ok size=%d", st.Size)
}

// ---- Generating operations ----

// opGen draws operations on paths of the reference union's current tree.
type opGen struct {
	rng   *rand.Rand
	paths []string          // every path but the root, sorted
	types map[string]string // path -> type
	dirs  []string          // directories, the root included
}

// scan lists root's current paths and types (names only; no content).
func (g *opGen) scan(root string) {
	g.paths, g.dirs, g.types = nil, []string{"."}, map[string]string{}
	var walk func(rel string)
	walk = func(rel string) {
		ents, _ := readDirents(filepath.Join(root, rel))
		for _, e := range ents {
			child := path.Join(rel, e.name)
			var st unix.Stat_t
			if unix.Lstat(filepath.Join(root, child), &st) != nil {
				continue
			}
			g.paths = append(g.paths, child)
			g.types[child] = typeName(st.Mode)
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				g.dirs = append(g.dirs, child)
				walk(child)
			}
		}
	}
	walk(".")
	sort.Strings(g.paths)
}

// existing returns a path of type typ ("" any type), or any path if none.
func (g *opGen) existing(typ string) string {
	var c []string
	for _, p := range g.paths {
		if typ == "" || g.types[p] == typ {
			c = append(c, p)
		}
	}
	if len(c) == 0 {
		c = g.paths
	}
	if len(c) == 0 {
		return g.fresh()
	}
	return pick(g.rng, c)
}

// fresh returns a name from the pool in an existing directory: often new,
// sometimes hidden below (whited out or under an opaque directory),
// sometimes existing.
func (g *opGen) fresh() string {
	return path.Join(pick(g.rng, g.dirs), pick(g.rng, namePool))
}

// target picks the path an operation works on, preferring type typ.
func (g *opGen) target(typ string) string {
	switch r := g.rng.IntN(100); {
	case r < 55:
		return g.existing(typ)
	case r < 70:
		return g.existing("")
	case r < 93:
		return g.fresh()
	case r < 95:
		return "."
	default: // below a non-directory, or below a missing directory
		if g.rng.IntN(2) == 0 {
			return path.Join(g.existing("file"), "x")
		}
		return path.Join("nodir", pick(g.rng, namePool))
	}
}

type opWeight struct {
	kind   string
	weight int
}

var opWeights = []opWeight{
	{"write", 10}, {"append", 6}, {"pwrite", 4}, {"truncate", 5}, {"excl", 4}, {"read", 4},
	{"mkdir", 7}, {"rmdir", 5}, {"unlink", 7}, {"rename", 9}, {"noreplace", 3}, {"exchange", 3},
	{"symlink", 4}, {"link", 4}, {"chmod", 4}, {"chown", 4}, {"utimens", 4},
	{"setxattr", 6}, {"removexattr", 3}, {"getxattr", 2}, {"listxattr", 2},
	{"mkfifo", 2}, {"mknod0", 1}, {"readdir", 3}, {"stat", 2}, {"readlink", 1},
	{"hold", 6}, {"fdread", 4}, {"fdwrite", 3}, {"fdstat", 3}, {"fdtrunc", 1}, {"fdchmod", 1},
	{"fdsetxattr", 1}, {"tmpfile", 2}, {"fallocate", 2},
}

var (
	xattrNames = []string{"user.a", "user.b", "user.color", "user.k", "user.empty", "user.a", "user.b",
		"trusted.overlay.opaque", "trusted.overlay.whiteout"}
	xattrValues = []string{"", "v1", "value two", "y"}
	opModes     = []uint32{0o644, 0o600, 0o755, 0o700, 0o000, 0o444, 0o1777, 0o2755, 0o4755, 0o777, 0o640}
	opOwners    = []int{0, 1000, 65534, -1}
	symTargets  = []string{"a", "d1/a", "nowhere", "loop", "e", "d2", "d1/sub/c", "fifo1"}
	writeSizes  = []int64{0, 1, 17, 100, 4096, 5000}
)

// weight is w's weight, or 0 when -skip-ops names it.
func (w opWeight) weightNow() int {
	for _, k := range strings.Split(*flagSkipOps, ",") {
		if k == w.kind {
			return 0
		}
	}
	return w.weight
}

// next draws the next operation on the tree last scanned.
func (g *opGen) next() *op {
	total := 0
	for _, w := range opWeights {
		total += w.weightNow()
	}
	r := g.rng.IntN(total)
	var kind string
	for _, w := range opWeights {
		if r < w.weightNow() {
			kind = w.kind
			break
		}
		r -= w.weightNow()
	}
	o := &op{Kind: kind, Fill: g.rng.Uint64()}
	size := func() int64 {
		if g.rng.IntN(10) == 0 {
			return 70_000 + g.rng.Int64N(100_000)
		}
		return pick(g.rng, writeSizes) + g.rng.Int64N(64)
	}
	switch kind {
	case "write", "excl":
		o.P, o.Mode, o.Size = g.target("file"), pick(g.rng, opModes), size()
		if kind == "excl" && g.rng.IntN(2) == 0 {
			o.P = g.fresh()
		}
	case "append", "pwrite", "read":
		o.P, o.Size = g.target("file"), size()
		o.Off = g.rng.Int64N(8192)
	case "truncate":
		o.P = g.target("file")
		o.Size = pick(g.rng, []int64{0, 1, 10, 4096, 100_000, 2 << 20})
	case "mkdir", "mkfifo":
		o.P, o.Mode = g.target("dir"), pick(g.rng, opModes)
		if g.rng.IntN(2) == 0 {
			o.P = g.fresh()
		}
	case "rmdir", "readdir":
		o.P = g.target("dir")
	case "unlink", "stat":
		o.P = g.target("")
	case "readlink":
		o.P = g.target("symlink")
	case "rename", "noreplace", "exchange", "link":
		typ := pick(g.rng, []string{"file", "dir", "symlink", "file", ""})
		if kind == "link" {
			typ = "file"
		}
		o.P = g.target(typ)
		switch r := g.rng.IntN(10); {
		case r < 5:
			o.Q = g.fresh()
		case r < 8:
			o.Q = g.existing(typ)
		default:
			o.Q = g.target("")
		}
	case "symlink":
		o.P, o.Value = g.target(""), pick(g.rng, symTargets)
		if g.rng.IntN(2) == 0 {
			o.P = g.fresh()
		}
	case "chmod":
		o.P, o.Mode = g.target(""), pick(g.rng, opModes)
	case "chown":
		o.P, o.UID, o.GID, o.Follow = g.target(""), pick(g.rng, opOwners), pick(g.rng, opOwners), g.rng.IntN(2) == 0
	case "utimens":
		o.P, o.Follow = g.target(""), g.rng.IntN(3) == 0
		o.Atime, o.Mtime = g.timespec(), g.timespec()
	case "setxattr", "removexattr", "getxattr":
		o.P, o.Name, o.Value = g.target(""), pick(g.rng, xattrNames), pick(g.rng, xattrValues)
		o.Flags = pick(g.rng, []int{0, 0, unix.XATTR_CREATE, unix.XATTR_REPLACE})
		o.Follow = g.rng.IntN(4) == 0
	case "listxattr":
		o.P = g.target("")
	case "mknod0":
		o.P = g.fresh()
	case "hold":
		o.P = g.target("file")
		o.Flags = pick(g.rng, []int{unix.O_RDONLY, unix.O_RDONLY, unix.O_RDWR, unix.O_WRONLY | unix.O_APPEND, unix.O_RDONLY | unix.O_TRUNC})
	case "fdread", "fdwrite", "fdtrunc":
		o.Off, o.Size = g.rng.Int64N(8192), size()
	case "fdchmod":
		o.Mode = pick(g.rng, opModes)
	case "fdsetxattr":
		o.Name, o.Value = pick(g.rng, xattrNames), pick(g.rng, xattrValues)
	case "tmpfile":
		o.P, o.Q, o.Mode, o.Size = g.target("dir"), g.fresh(), pick(g.rng, opModes), size()
	case "fallocate":
		o.P = g.target("file")
		o.Flags = pick(g.rng, []int{0, unix.FALLOC_FL_KEEP_SIZE, unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE})
		o.Off, o.Size = g.rng.Int64N(1<<20), 1+g.rng.Int64N(200_000)
	}
	o.Slot = g.rng.IntN(nSlots)
	if g.rng.IntN(5) == 0 {
		o.As = pick(g.rng, []int{1000, 65534})
	}
	return o
}

// timespec draws a time before 2019 with nanoseconds, or UTIME_NOW/OMIT.
func (g *opGen) timespec() unix.Timespec {
	switch g.rng.IntN(8) {
	case 0:
		return unix.Timespec{Nsec: unix.UTIME_NOW}
	case 1:
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.Timespec{Sec: 631152000 + g.rng.Int64N(915148800), Nsec: g.rng.Int64N(1_000_000_000)}
}
