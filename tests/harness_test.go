// Package tests holds the integration and conformance tests that mount
// real filesystems: unionfuse (served in-process through fs.Mount) and the
// kernel's overlayfs, which is the oracle. Everything that mounts needs root
// and /dev/fuse and is skipped with a reason otherwise.
//
// This file holds the shared harness: the mounters (kernel overlay and
// unionfuse behind one interface), mounting with guaranteed unmount, a
// builder for layer directories, and tree snapshots with a readable diff.
package tests

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/fs"
	"github.com/unionfuse/unionfuse/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// subjectEnv selects the filesystem under test: "unionfuse" (the default)
// or "kernel", which runs every differential test kernel-against-kernel —
// a self-check of the harness: it must always pass.
const subjectEnv = "UNIONFUSE_TEST_SUBJECT"

// debugEnv, when set to 1, mounts unionfuse with Debug logging to stderr.
const debugEnv = "UNIONFUSE_TEST_DEBUG"

// mounter mounts one union of existing layer directories.
type mounter interface {
	// name is "kernel" or "unionfuse".
	name() string
	// mount mounts l at l.Merged and returns a function that unmounts it.
	mount(l layout) (unmount func() error, err error)
}

// layout names the directories of one union. Lowers are top first.
type layout struct {
	Lowers []string
	Upper  string
	Work   string
	Merged string
}

// newLayout makes dir/lower0..lowerN-1, upper, work and merged.
func newLayout(t testing.TB, dir string, nLowers int) layout {
	t.Helper()
	l := layout{
		Upper:  filepath.Join(dir, "upper"),
		Work:   filepath.Join(dir, "work"),
		Merged: filepath.Join(dir, "merged"),
	}
	for i := 0; i < nLowers; i++ {
		l.Lowers = append(l.Lowers, filepath.Join(dir, fmt.Sprintf("lower%d", i)))
	}
	for _, d := range append([]string{l.Upper, l.Work, l.Merged}, l.Lowers...) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// kernelOverlay mounts the kernel's overlayfs with unionfuse's defaults
// (kernelOptions).
type kernelOverlay struct {
	// redirectOff mounts with redirect_dir=off instead.
	redirectOff bool
	// index mounts with index=on.
	index bool
	// userxattr mounts with userxattr (which takes no redirect_dir: the
	// kernel then neither follows nor makes redirects).
	userxattr bool
}

func (kernelOverlay) name() string { return "kernel" }

func (k kernelOverlay) mount(l layout) (func() error, error) {
	opts := "lowerdir=" + strings.Join(l.Lowers, ":") +
		",upperdir=" + l.Upper + ",workdir=" + l.Work
	switch {
	case k.userxattr:
		opts += ",userxattr"
	case k.redirectOff:
		opts += kernelOptions(true) + ",redirect_dir=off"
	default:
		opts += kernelOptions(true)
	}
	if k.index {
		opts += ",index=on"
	}
	if err := unix.Mount("overlay", l.Merged, "overlay", 0, opts); err != nil {
		return nil, fmt.Errorf("mount -t overlay -o %s %s: %w", opts, l.Merged, err)
	}
	return func() error {
		if err := unix.Unmount(l.Merged, 0); err != nil {
			return fmt.Errorf("umount %s: %w", l.Merged, err)
		}
		return nil
	}, nil
}

// kernelOptions returns the options that make the kernel's overlayfs
// behave as unionfuse does by default: redirect_dir=on (directories with
// lower content are renamed, with redirects; a mount without upper can
// only follow them), and index=off and metacopy=off, which are the
// kernel's defaults unless this machine's overlay module was loaded with
// other ones.
func kernelOptions(writable bool) string {
	extra := ",redirect_dir=follow"
	if writable {
		extra = ",redirect_dir=on"
	}
	param := func(p string) string {
		b, _ := os.ReadFile("/sys/module/overlay/parameters/" + p)
		return strings.TrimSpace(string(b))
	}
	if param("index") == "Y" {
		extra += ",index=off"
	}
	if param("metacopy") == "Y" {
		extra += ",metacopy=off"
	}
	return extra
}

// unionfuseMounter mounts unionfuse in this process through fs.Mount.
// Without passthrough, unionfuse's semantics are the kernel's exactly. With
// it, a descriptor opened on a lower file before a copy-up keeps reading the
// lower file (fs/passthrough.go), so reads through such descriptors are
// left out of the comparison (TestDifferentialPassthrough).
type unionfuseMounter struct {
	passthrough bool
	redirectOff bool // -o redirect_dir=off
	index       bool // -o index=on
	userxattr   bool // -o userxattr
}

func (m unionfuseMounter) name() string {
	name := "unionfuse"
	if m.passthrough {
		name += " with passthrough"
	}
	if m.redirectOff {
		name += " -o redirect_dir=off"
	}
	if m.index {
		name += " -o index=on"
	}
	if m.userxattr {
		name += " -o userxattr"
	}
	return name
}

func (m unionfuseMounter) mount(l layout) (unmount func() error, err error) {
	cfg := fs.Config{Lowers: l.Lowers, Upper: l.Upper, Work: l.Work, NoPassthrough: !m.passthrough}
	if m.redirectOff {
		cfg.Redirect = fs.RedirectOff
	}
	cfg.Index = m.index
	cfg.UserXattr = m.userxattr
	if os.Getenv(debugEnv) == "1" {
		cfg.Debug = true
		cfg.Logger = log.New(os.Stderr, "unionfuse: ", log.Lmicroseconds)
	}
	mounted, err := fs.Mount(l.Merged, cfg)
	if err != nil {
		return nil, fmt.Errorf("fs.Mount %s: %w", l.Merged, err)
	}
	return mounted.Unmount, nil
}

// subject returns the mounter under test: unionfuse (without passthrough:
// the kernel's semantics exactly), or the kernel when
// UNIONFUSE_TEST_SUBJECT=kernel (the harness then runs kernel-against-kernel,
// a check of the harness itself).
func subject(t testing.TB) mounter {
	t.Helper()
	switch s := os.Getenv(subjectEnv); s {
	case "kernel":
		t.Logf("%s=kernel: testing the kernel against itself (harness self-check)", subjectEnv)
		return kernelOverlay{}
	case "", "unionfuse":
	default:
		t.Fatalf("%s=%q: want unionfuse or kernel", subjectEnv, s)
	}
	return unionfuseMounter{}
}

// requireRoot skips t unless it runs as root with /dev/fuse and overlayfs.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it mounts kernel overlayfs and a FUSE filesystem")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("needs /dev/fuse to mount unionfuse: %v", err)
	}
	if b, err := os.ReadFile("/proc/filesystems"); err != nil || !strings.Contains(string(b), "\toverlay\n") {
		// The module may load on first mount; try it.
		if err := probeKernelOverlay(); err != nil {
			t.Skipf("needs kernel overlayfs (the oracle): %v", err)
		}
	}
}

func probeKernelOverlay() error {
	dir, err := os.MkdirTemp("", "overlay-probe")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	l := layout{Lowers: []string{dir + "/l"}, Upper: dir + "/u", Work: dir + "/w", Merged: dir + "/m"}
	for _, d := range []string{l.Lowers[0], l.Upper, l.Work, l.Merged} {
		os.Mkdir(d, 0o755)
	}
	unmount, err := kernelOverlay{}.mount(l)
	if err != nil {
		return err
	}
	return unmount()
}

// union is one live mount made by mountUnion.
type union struct {
	layout
	m       mounter
	t       testing.TB
	unmount func() error
	done    bool
}

// mountUnion mounts l with m and registers a cleanup that unmounts it
// (lazily, with MNT_DETACH, if a normal unmount fails) and checks that
// nothing is left in /proc/mounts. Failing to mount is fatal.
func mountUnion(t testing.TB, m mounter, l layout) *union {
	t.Helper()
	unmount, err := m.mount(l)
	if err != nil {
		t.Fatalf("%s: %v", m.name(), err)
	}
	u := &union{layout: l, m: m, t: t, unmount: unmount}
	t.Cleanup(func() {
		if err := u.Unmount(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return u
}

// Unmount unmounts u once; later calls do nothing. If the unmount fails,
// the mount is detached lazily so no test leaves it behind, and the error
// is returned.
func (u *union) Unmount() error {
	if u.done {
		return nil
	}
	u.done = true
	err := u.unmount()
	if err != nil {
		if derr := unix.Unmount(u.Merged, unix.MNT_DETACH); derr != nil && !errors.Is(derr, unix.EINVAL) {
			err = fmt.Errorf("%v; lazy unmount: %v", err, derr)
		}
	}
	if isMounted(u.Merged) {
		unix.Unmount(u.Merged, unix.MNT_DETACH)
		if err == nil {
			err = fmt.Errorf("%s: %s still in /proc/mounts after unmount", u.m.name(), u.Merged)
		}
	}
	return err
}

// mustUnmount unmounts u and fails t if that goes wrong.
func (u *union) mustUnmount() {
	u.t.Helper()
	if err := u.Unmount(); err != nil {
		u.t.Fatalf("%s: %v", u.m.name(), err)
	}
}

// isMounted reports whether dir is a mount point in the mount table.
func isMounted(dir string) bool {
	ok, _ := mountinfo.IsMountPoint(dir)
	return ok
}

// checkNoMountsUnder fails t if anything is still mounted below dir.
func checkNoMountsUnder(t testing.TB, dir string) {
	t.Helper()
	below, _ := mountinfo.Below(dir)
	for i := len(below) - 1; i >= 0; i-- {
		t.Errorf("left mounted: %s", below[i])
		unix.Unmount(below[i], unix.MNT_DETACH)
	}
}

// testDir returns a fresh temporary directory and, when the test ends,
// checks that nothing is left mounted below it (cleanups run last first,
// so this runs after the unmounts registered later).
func testDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() { checkNoMountsUnder(t, dir) })
	return dir
}

// ---- Building layers ----

// item is one object of a layer. Parents are created as needed (0755).
type item struct {
	path string
	// kind: 'f' regular file (data), 'd' directory, 'l' symlink (data is
	// the target), 'h' hard link to the item at data (same layer),
	// 'p' fifo, 'w' whiteout (char 0/0), 'x' xattr whiteout (a zero-size
	// file with trusted.overlay.whiteout; its directory needs
	// trusted.overlay.opaque=x for the kernel to honour it).
	kind   byte
	data   string
	mode   uint32 // permission bits; 0 means the kind's default
	uid    int
	gid    int
	xattrs map[string]string // for 'd': {"trusted.overlay.opaque": "y"} makes it opaque
	// sparse, for 'f': write data at this offset, leaving a hole before it.
	sparse int64
	// optional items are skipped when their path exists already in the
	// layer or cannot be made (a parent is not a directory).
	optional bool
}

// fixedTime is the timestamp builders give every object, so times can be
// compared across copies of the same layers.
var fixedTime = time.Date(2020, 1, 2, 3, 4, 5, 600_000_000, time.UTC)

// buildLayer creates items below dir, then sets every object's atime and
// mtime to fixedTime (children before their directory).
func buildLayer(t testing.TB, dir string, items []item) {
	t.Helper()
	if err := buildLayerErr(dir, items); err != nil {
		t.Fatalf("build layer %s: %v", dir, err)
	}
}

func buildLayerErr(dir string, items []item) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, it := range items {
		p := filepath.Join(dir, it.path)
		if it.optional {
			var st unix.Stat_t
			if unix.Lstat(p, &st) == nil {
				continue
			}
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			if it.optional {
				continue
			}
			return err
		}
		mode := it.mode
		var err error
		switch it.kind {
		case 'f':
			if mode == 0 {
				mode = 0o644
			}
			err = writeFileAt(p, []byte(it.data), it.sparse, mode)
		case 'd':
			if mode == 0 {
				mode = 0o755
			}
			err = unix.Mkdir(p, mode)
			if errors.Is(err, unix.EEXIST) {
				err = nil
			}
		case 'l':
			err = unix.Symlink(it.data, p)
		case 'h':
			err = unix.Link(filepath.Join(dir, it.data), p)
		case 'p':
			if mode == 0 {
				mode = 0o644
			}
			err = unix.Mkfifo(p, mode)
		case 'w':
			mode = 0
			err = unix.Mknod(p, unix.S_IFCHR, 0)
		case 'x':
			mode = 0o644
			err = writeFileAt(p, nil, 0, mode)
			if err == nil {
				err = unix.Lsetxattr(p, "trusted.overlay.whiteout", nil, 0)
			}
		default:
			err = fmt.Errorf("unknown kind %q", it.kind)
		}
		if err != nil && it.optional {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", it.path, err)
		}
		if it.kind != 'l' && it.kind != 'h' {
			// Mkdir, Mkfifo and Open apply the umask; set the exact mode.
			if err := unix.Chmod(p, mode); err != nil {
				return fmt.Errorf("chmod %s: %w", it.path, err)
			}
		}
		if it.uid != 0 || it.gid != 0 {
			if err := unix.Lchown(p, it.uid, it.gid); err != nil {
				return fmt.Errorf("chown %s: %w", it.path, err)
			}
		}
		for _, k := range sortedKeys(it.xattrs) {
			if err := unix.Lsetxattr(p, k, []byte(it.xattrs[k]), 0); err != nil {
				return fmt.Errorf("setxattr %s %s: %w", it.path, k, err)
			}
		}
	}
	return setTimesBelow(dir, fixedTime)
}

func writeFileAt(p string, data []byte, off int64, mode uint32) error {
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, mode)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if off > 0 {
		if err := unix.Ftruncate(fd, off+int64(len(data))); err != nil {
			return err
		}
	}
	if len(data) > 0 {
		if _, err := unix.Pwrite(fd, data, off); err != nil {
			return err
		}
	}
	return nil
}

// setTimesBelow sets atime and mtime of dir and everything below it,
// without following symlinks, deepest first.
func setTimesBelow(dir string, when time.Time) error {
	var paths []string
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return err
	}
	ts := unix.NsecToTimespec(when.UnixNano())
	for i := len(paths) - 1; i >= 0; i-- {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
