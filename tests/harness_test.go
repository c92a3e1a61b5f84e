// Package tests holds the integration and conformance tests that mount
// real filesystems: unionfuse (served in-process through fs.Mount) and the
// kernel's overlayfs, which is the oracle. Everything that mounts needs root
// and /dev/fuse and is skipped with a reason otherwise.
//
// This file holds the shared harness: the mounters (kernel overlay and
// unionfuse behind one interface) and mounting with guaranteed unmount.
// Layers are built with internal/testutil, trees compared with
// snapshot_test.go.
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
	// metacopy mounts with metacopy=on.
	metacopy bool
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
	if k.metacopy {
		opts += ",metacopy=on"
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
// Without passthrough, unionfuse's semantics are the kernel's exactly,
// with the kernel's writeback cache (the default there) or without. With
// it, a descriptor opened on a lower file before a copy-up keeps reading the
// lower file (fs/passthrough.go), so reads through such descriptors are
// left out of the comparison (TestDifferentialPassthrough).
type unionfuseMounter struct {
	passthrough bool
	redirectOff bool // -o redirect_dir=off
	index       bool // -o index=on
	metacopy    bool // -o metacopy=on
	userxattr   bool // -o userxattr
	maxNodes    int  // -o max_nodes=N (0: the default)
	writeOff    bool // -o writeback=off
}

// writeback reports whether the mount has the kernel's writeback cache
// (fs.WritebackAuto's rule).
func (m unionfuseMounter) writeback() bool {
	return !m.passthrough && !m.index && !m.metacopy && !m.writeOff
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
	if m.metacopy {
		name += " -o metacopy=on"
	}
	if m.userxattr {
		name += " -o userxattr"
	}
	if m.maxNodes != 0 {
		name += fmt.Sprintf(" -o max_nodes=%d", m.maxNodes)
	}
	if m.writeOff {
		name += " -o writeback=off"
	}
	return name
}

func (m unionfuseMounter) mount(l layout) (unmount func() error, err error) {
	cfg := fs.Config{Lowers: l.Lowers, Upper: l.Upper, Work: l.Work, NoPassthrough: !m.passthrough}
	if m.redirectOff {
		cfg.Redirect = fs.RedirectOff
	}
	cfg.Index = m.index
	cfg.Metacopy = m.metacopy
	cfg.UserXattr = m.userxattr
	cfg.MaxNodes = m.maxNodes
	if m.writeOff {
		cfg.Writeback = fs.WritebackOff
	}
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
