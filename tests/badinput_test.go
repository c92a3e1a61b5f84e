package tests

// Every bad input of issue 2 through the real command line: the command
// must exit non-zero with exactly one line on stderr, leave nothing mounted
// at the mountpoint, start no daemon, and change nothing in any layer.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// badCase is one bad command line. args builds it from a fresh tutorial
// layout in dir; it may prepare the directories (mount something, make a
// file) first.
type badCase struct {
	name string
	args func(t *testing.T, l layout, dir string) []string
	want string // a substring of the one line on stderr
}

// std is the usual positional command line with one part replaced.
func std(l layout, lower, upper, work, merged string) []string {
	pick := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	return []string{"mount", pick(lower, l.Lowers[0]), pick(upper, l.Upper), pick(work, l.Work), pick(merged, l.Merged)}
}

// file makes a regular file in dir and returns its path.
func file(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// subdir makes dir/name and returns its path.
func subdir(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// mountFor mounts a filesystem of fstype at dir until t ends.
func mountFor(t *testing.T, fstype, dir string) {
	t.Helper()
	if err := unix.Mount(fstype, dir, fstype, 0, ""); err != nil {
		t.Skipf("cannot mount %s: %v", fstype, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
}

var badCases = []badCase{
	{"missing lower", func(t *testing.T, l layout, d string) []string {
		return std(l, filepath.Join(d, "nope"), "", "", "")
	}, "lower " + "%D/nope: no such file or directory"},
	{"lower is a file", func(t *testing.T, l layout, d string) []string {
		return std(l, file(t, d, "f"), "", "", "")
	}, "lower %D/f: not a directory"},
	{"missing upper", func(t *testing.T, l layout, d string) []string {
		return std(l, "", filepath.Join(d, "nope"), "", "")
	}, "upper %D/nope: no such file or directory"},
	{"upper is a file", func(t *testing.T, l layout, d string) []string {
		return std(l, "", file(t, d, "f"), "", "")
	}, "upper %D/f: not a directory"},
	{"missing work", func(t *testing.T, l layout, d string) []string {
		return std(l, "", "", filepath.Join(d, "nope"), "")
	}, "work %D/nope: no such file or directory"},
	{"work is a file", func(t *testing.T, l layout, d string) []string {
		return std(l, "", "", file(t, d, "f"), "")
	}, "work %D/f: not a directory"},
	{"missing mountpoint", func(t *testing.T, l layout, d string) []string {
		return std(l, "", "", "", filepath.Join(d, "nope"))
	}, "mountpoint %D/nope: no such file or directory"},
	{"mountpoint is a file", func(t *testing.T, l layout, d string) []string {
		return std(l, "", "", "", file(t, d, "f"))
	}, "mountpoint %D/f: not a directory"},
	{"upper inside lower", func(t *testing.T, l layout, d string) []string {
		return std(l, "", subdir(t, l.Lowers[0], "u"), "", "")
	}, "upper %D/lower0/u is inside lower %D/lower0"},
	{"work inside lower", func(t *testing.T, l layout, d string) []string {
		return std(l, "", "", subdir(t, l.Lowers[0], "w"), "")
	}, "work %D/lower0/w is inside lower %D/lower0"},
	{"upper inside merged", func(t *testing.T, l layout, d string) []string {
		return std(l, "", subdir(t, l.Merged, "u"), "", "")
	}, "upper %D/merged/u is inside the mountpoint %D/merged"},
	{"work inside merged", func(t *testing.T, l layout, d string) []string {
		return std(l, "", "", subdir(t, l.Merged, "w"), "")
	}, "work %D/merged/w is inside the mountpoint %D/merged"},
	{"upper and work the same", func(t *testing.T, l layout, d string) []string {
		return std(l, "", "", l.Upper, "")
	}, "upper and work are the same directory %D/upper"},
	{"work inside upper", func(t *testing.T, l layout, d string) []string {
		return std(l, "", "", subdir(t, l.Upper, "w"), "")
	}, "work %D/upper/w is inside upper %D/upper"},
	{"upper inside work", func(t *testing.T, l layout, d string) []string {
		return std(l, "", subdir(t, l.Work, "u"), "", "")
	}, "upper %D/work/u is inside work %D/work"},
	{"lower inside merged", func(t *testing.T, l layout, d string) []string {
		return std(l, l.Lowers[0]+":"+subdir(t, l.Merged, "l"), "", "", "")
	}, "lower %D/merged/l is inside the mountpoint %D/merged"},
	{"work on another filesystem", func(t *testing.T, l layout, d string) []string {
		w := subdir(t, d, "tmpfs-work")
		mountFor(t, "tmpfs", w)
		return std(l, "", "", w, "")
	}, "work %D/tmpfs-work is on a different filesystem than upper %D/upper"},
	{"upper without xattr support", func(t *testing.T, l layout, d string) []string {
		ram := subdir(t, d, "ramfs")
		mountFor(t, "ramfs", ram)
		if err := unix.Setxattr(ram, "trusted.overlay.probe", []byte("y"), 0); err == nil {
			t.Skip("this kernel's ramfs takes trusted.* xattrs")
		}
		return std(l, "", subdir(t, ram, "u"), subdir(t, ram, "w"), "")
	}, "upper %D/ramfs/u: its filesystem does not support trusted.* extended attributes"},
	{"mountpoint already mounted", func(t *testing.T, l layout, d string) []string {
		mountFor(t, "tmpfs", l.Merged)
		return std(l, "", "", "", "")
	}, "mountpoint %D/merged is already a mount point"},
	{"work that cannot be cleaned", func(t *testing.T, l layout, d string) []string {
		stuck := file(t, subdir(t, l.Work, "work"), "stuck")
		immutable(t, stuck)
		return std(l, "", "", "", "")
	}, "cannot be removed"},
	{"unknown -o option", func(t *testing.T, l layout, d string) []string {
		return []string{"-o", "lowerdir=" + l.Lowers[0] + ",upperdir=" + l.Upper + ",workdir=" + l.Work + ",bogus", l.Merged}
	}, `unknown mount option "bogus"`},
	{"-o lowerdir without a value", func(t *testing.T, l layout, d string) []string {
		return []string{"-o", "lowerdir,upperdir=" + l.Upper + ",workdir=" + l.Work, l.Merged}
	}, `mount option "lowerdir" needs a value`},
	{"-o upperdir without workdir", func(t *testing.T, l layout, d string) []string {
		return []string{"-o", "lowerdir=" + l.Lowers[0] + ",upperdir=" + l.Upper, l.Merged}
	}, "needs a workdir="},
	{"-o empty layer", func(t *testing.T, l layout, d string) []string {
		// ("a::b" is a data-only layer b, as in the kernel.)
		return []string{"-o", "lowerdir=" + l.Lowers[0] + ":", l.Merged}
	}, "empty layer path"},
	{"-o flag with a value", func(t *testing.T, l layout, d string) []string {
		return []string{"mount", "-o", "nodev=1", l.Lowers[0], l.Merged}
	}, `mount option "nodev=1" takes no value`},
	{"no lowers", func(t *testing.T, l layout, d string) []string {
		return []string{"-o", "upperdir=" + l.Upper + ",workdir=" + l.Work, l.Merged}
	}, "needs -o lowerdir="},
	{"no lowers positional", func(t *testing.T, l layout, d string) []string {
		return []string{"mount", "", l.Merged}
	}, "no lower layer given"},
}

// immutable sets the immutable attribute on p until t ends (chattr +i),
// or skips t when the filesystem cannot.
func immutable(t *testing.T, p string) {
	t.Helper()
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		t.Skip("needs chattr (e2fsprogs) to make an uncleanable work directory")
	}
	if out, err := exec.Command(chattr, "+i", p).CombinedOutput(); err != nil {
		t.Skipf("chattr +i %s: %v %s", p, err, out)
	}
	t.Cleanup(func() { exec.Command(chattr, "-i", p).Run() })
}

func TestBadInput(t *testing.T) {
	testutil.RequireFuse(t)
	for _, bc := range badCases {
		t.Run(bc.name, func(t *testing.T) {
			l := cliLayout(t)
			dir := filepath.Dir(l.Merged)
			args := bc.args(t, l, dir)
			before := layerDigest(t, l)
			r := cli(t, args...)
			want := strings.ReplaceAll(bc.want, "%D", dir)
			if r.code == 0 {
				t.Errorf("exit 0, want failure")
			}
			if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") || !strings.Contains(r.stderr, want) {
				t.Errorf("stderr %q, want one line containing %q", r.stderr, want)
			}
			t.Logf("stderr: %s", strings.TrimSpace(r.stderr))
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			if bc.name != "mountpoint already mounted" && isMounted(l.Merged) {
				t.Errorf("%s is mounted after a failed mount", l.Merged)
			}
			if rec, err := daemon.ReadPid(l.Merged); err == nil {
				t.Errorf("a daemon (%d) is recorded for %s", rec.PID, l.Merged)
			}
			if after := layerDigest(t, l); after != before {
				t.Errorf("layers changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestBadInputHelper checks the mount(8) helper form gives the same one
// line for a bad option.
func TestBadInputHelper(t *testing.T) {
	testutil.RequireFuse(t)
	l := cliLayout(t)
	before := layerDigest(t, l)
	bin := unionfuseBinary(t)
	helper := filepath.Join(t.TempDir(), "mount.fuse.unionfuse")
	if err := os.Symlink(bin, helper); err != nil {
		t.Fatal(err)
	}
	r := run(t, exec.Command(helper, "unionfuse", l.Merged, "-o", "rw,lowerdir="+l.Lowers[0]+",upperdir="+l.Upper+",workdir="+l.Work+",nonsense", "-t", "fuse.unionfuse"))
	if r.code == 0 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, `unknown mount option "nonsense"`) {
		t.Errorf("helper with a bad option: exit %d, stderr %q", r.code, r.stderr)
	}
	if isMounted(l.Merged) {
		t.Errorf("%s mounted", l.Merged)
	}
	if after := layerDigest(t, l); after != before {
		t.Errorf("layers changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// layerDigest describes every object in the lower, upper and work
// directories: type, mode, owner, size, content hash, xattrs, and the
// modification time of everything but directories (whose times a failed
// probe may touch without changing what they hold).
func layerDigest(t *testing.T, l layout) string {
	t.Helper()
	var lines []string
	for _, root := range append(append([]string(nil), l.Lowers...), l.Upper, l.Work) {
		tr, err := snapshot(root, snapOpts{})
		if err != nil {
			t.Fatalf("snapshot %s: %v", root, err)
		}
		for rel, n := range tr {
			c := *n
			if c.Type == "dir" {
				c.Mtime, c.Ctime = 0, 0
			}
			c.Ctime = 0
			lines = append(lines, fmt.Sprintf("%s/%s %+v", filepath.Base(root), rel, c))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
