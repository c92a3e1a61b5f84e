package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// ForWhiteouts is the reason to give RequireRoot in a test that makes
// whiteouts (character devices 0/0) or sets trusted.overlay.* xattrs.
const ForWhiteouts = "makes whiteouts (mknod 0/0) and trusted.overlay.* xattrs"

// RequireRoot skips t unless it runs as root; why says what needs it
// (ForWhiteouts, "mounts ...").
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + why)
	}
}

// RequireFuse skips t unless it can mount a FUSE filesystem itself: it
// runs as root and /dev/fuse exists.
func RequireFuse(t testing.TB) {
	t.Helper()
	RequireRoot(t, "mounts a FUSE filesystem")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("needs /dev/fuse to mount unionfuse: %v", err)
	}
}

// RequireMounts skips t unless it can mount both unionfuse and the
// kernel's overlayfs (the oracle of the integration tests): root,
// /dev/fuse and the overlay module.
func RequireMounts(t testing.TB) {
	t.Helper()
	RequireRoot(t, "mounts the kernel's overlayfs and a FUSE filesystem")
	RequireFuse(t)
	if err := overlayUsable(); err != nil {
		t.Skipf("needs kernel overlayfs (the oracle): %v", err)
	}
}

// overlayUsable reports, once per process, why the kernel's overlayfs
// cannot be mounted, or nil.
var overlayUsable = sync.OnceValue(func() error {
	if b, err := os.ReadFile("/proc/filesystems"); err == nil && strings.Contains(string(b), "\toverlay\n") {
		return nil
	}
	// The module may load on first mount: try one.
	dir, err := os.MkdirTemp("", "overlay-probe")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"l", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	merged := filepath.Join(dir, "m")
	opts := "lowerdir=" + filepath.Join(dir, "l") + ",upperdir=" + filepath.Join(dir, "u") + ",workdir=" + filepath.Join(dir, "w")
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		return err
	}
	return unix.Unmount(merged, 0)
})
