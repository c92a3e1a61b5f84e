package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// nobody is the unprivileged identity the rootless tests run as.
const nobody = 65534

// openFuseDevice lets unprivileged users open /dev/fuse for the rest of the
// test (fusermount3 opens it as the caller).
func openFuseDevice(t *testing.T) { openToAll(t, "/dev/fuse") }

// requireTools skips t unless every one of tools is on PATH.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (make deps installs it)", tool)
		}
	}
}

// openToAll lets every user open the device at path until the test ends.
// It is 0666 on most systems, and then left alone; otherwise it is made
// so, and its mode restored when t ends. (Changing it only in a private
// mount namespace would hide the unprivileged mounts from the test.)
func openToAll(t *testing.T, path string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Skipf("no %s: %v", path, err)
	}
	if st.Mode&0o006 == 0o006 {
		return
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(path, os.FileMode(st.Mode&0o777)) })
}

// subIDFiles are copies of /etc/subuid and /etc/subgid with ranges added
// for one user, which the commands wrapped by with see in place of the
// real files; other processes (test binaries of other checkouts, too) go
// on seeing the real ones, unchanged.
type subIDFiles struct{ subuid, subgid string }

// addSubIDs gives user the range start..start+count-1 of subordinate uids
// and gids, for the commands that subIDFiles.with wraps.
func addSubIDs(t *testing.T, user string, start, count int) subIDFiles {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skipf("needs unshare (util-linux): %v", err)
	}
	dir := t.TempDir()
	f := subIDFiles{subuid: filepath.Join(dir, "subuid"), subgid: filepath.Join(dir, "subgid")}
	for real, cp := range map[string]string{"/etc/subuid": f.subuid, "/etc/subgid": f.subgid} {
		old, err := os.ReadFile(real)
		if os.IsNotExist(err) {
			// A mount point is needed; an empty file means what none does.
			err = os.WriteFile(real, nil, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		// The user's own lines (another test binary may be adding them
		// for real) give way to the range asked for.
		var lines []string
		for _, l := range strings.Split(string(old), "\n") {
			if l != "" && !strings.HasPrefix(l, user+":") {
				lines = append(lines, l+"\n")
			}
		}
		lines = append(lines, fmt.Sprintf("%s:%d:%d\n", user, start, count))
		if err := os.WriteFile(cp, []byte(strings.Join(lines, "")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// hasSubIDs reports whether /etc/subuid gives user a range.
func hasSubIDs(user string) bool {
	b, _ := os.ReadFile("/etc/subuid")
	return strings.HasPrefix(string(b), user+":") || strings.Contains(string(b), "\n"+user+":")
}

// with returns argv run in a mount namespace of its own in which the
// copies are bound over /etc/subuid and /etc/subgid. The namespace
// starts as a copy of this one; what the command mounts stays in it.
func (f subIDFiles) with(argv ...string) []string {
	return append([]string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
		`mount --bind "$1" /etc/subuid && mount --bind "$2" /etc/subgid && shift 2 && exec "$@"`,
		"sh", f.subuid, f.subgid}, argv...)
}

// worldDir returns a fresh directory that nobody can enter (t.TempDir's
// parents are private to root), removed when the test ends.
func worldDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "unionfuse-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() {
		checkNoMountsUnder(t, dir)
		os.RemoveAll(dir)
	})
	return dir
}

// TestRootless mounts as an unprivileged user, through fusermount3 and as
// root of a user namespace with a direct mount: userxattr is chosen by
// itself, whiteouts are still character devices 0/0, and the caller owns
// everything the mount writes.
func TestRootless(t *testing.T) {
	testutil.RequireMounts(t)
	requireTools(t, "setpriv", "unshare", "fusermount3")
	bin := unionfuseBinary(t)
	openFuseDevice(t)
	asNobody := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}
	for _, mode := range []struct {
		name string
		argv []string
	}{
		{"fusermount3", asNobody},
		{"userns", append(append([]string{}, asNobody...), "unshare", "-Urm")},
	} {
		t.Run(mode.name, func(t *testing.T) {
			dir := worldDir(t)
			l := newLayout(t, dir, 1)
			testutil.BuildDir(t, l.Lowers[0], []testutil.Item{
				{Path: "f", Kind: 'f', Data: "hi\n"},
				{Path: "g", Kind: 'f', Data: "gone\n"},
				{Path: "d/x", Kind: 'f', Data: "x\n"},
				{Path: "r/y", Kind: 'f', Data: "y\n"},
			})
			filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error {
				return os.Lchown(p, nobody, nobody)
			})
			before := mustSnapshot(t, l.Lowers[0], snapOpts{})
			script := strings.Join([]string{
				"set -e",
				bin + " mount " + l.Lowers[0] + " " + l.Upper + " " + l.Work + " " + l.Merged,
				"echo more >> " + l.Merged + "/f",
				"rm " + l.Merged + "/g",
				"rm -r " + l.Merged + "/d",
				"mkdir " + l.Merged + "/d",
				"mv " + l.Merged + "/r " + l.Merged + "/r2",
				"cat " + l.Merged + "/r2/y > " + dir + "/r2y.txt",
				"ls " + l.Merged + " > " + dir + "/ls.txt",
				bin + " umount " + l.Merged,
			}, "\n")
			cmd := exec.Command(mode.argv[0], append(mode.argv[1:], "sh", "-c", script)...)
			cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+dir, "HOME="+dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				unix.Unmount(l.Merged, unix.MNT_DETACH)
				t.Fatalf("as uid %d (%s): %v\n%s", nobody, mode.name, err, out)
			}
			if isMounted(l.Merged) {
				t.Fatal("still mounted after umount")
			}
			if b, _ := os.ReadFile(dir + "/ls.txt"); string(b) != "d\nf\nr2\n" {
				t.Errorf("merged listed %q, want d, f and r2", b)
			}
			if b, _ := os.ReadFile(dir + "/r2y.txt"); string(b) != "y\n" {
				t.Errorf("r2/y read %q after renaming r (a lower directory) to r2", b)
			}
			if v, err := getXattr(filepath.Join(l.Upper, "r2"), "user.overlay.redirect"); err != nil || v != "r" {
				t.Errorf("upper/r2: user.overlay.redirect = %q, %v; want r", v, err)
			}
			if b, _ := os.ReadFile(filepath.Join(l.Upper, "f")); string(b) != "hi\nmore\n" {
				t.Errorf("upper/f = %q after the copy-up", b)
			}
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(l.Upper, "g"), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 0 {
				t.Errorf("upper/g is not a whiteout (char 0/0): %v mode %o", err, st.Mode)
			}
			for _, name := range []string{"f", "g", "d", "r2"} {
				unix.Lstat(filepath.Join(l.Upper, name), &st)
				if st.Uid != nobody || st.Gid != nobody {
					t.Errorf("upper/%s is owned by %d:%d, want the caller %d:%d", name, st.Uid, st.Gid, nobody, nobody)
				}
			}
			if v, err := getXattr(filepath.Join(l.Upper, "d"), "user.overlay.opaque"); err != nil || v != "y" {
				t.Errorf("upper/d: user.overlay.opaque = %q, %v; want y (userxattr chosen by itself)", v, err)
			}
			if v, err := getXattr(filepath.Join(l.Upper, "d"), "trusted.overlay.opaque"); err == nil {
				t.Errorf("upper/d has trusted.overlay.opaque=%q in userxattr mode", v)
			}
			if diff := diffTrees(before, mustSnapshot(t, l.Lowers[0], snapOpts{}), cmpOpts{strict: true}); len(diff) > 0 {
				t.Errorf("lower changed: %v", diff)
			}
		})
	}
}
