package cowcache

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/unionfuse/unionfuse/internal/dirwalk"
	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// metacopyBytes is what the base layer of the move tests holds at
// data/orig, and what the metacopy files of their uppers must end with.
var metacopyBytes = bytes.Repeat([]byte("lower data\n"), 3000)

// moveBase imports the base image of the move tests into s.
func moveBase(t *testing.T, s *Store) Image {
	t.Helper()
	items := append(testutil.Spec("etc/", "etc/passwd=root", "app/", "app/gone=x", "x/", "x/a=a", "x/b=b", "usr/", "usr/bin/", "var/", "var/log/"),
		testutil.Item{Path: "data/orig", Kind: testutil.File, Data: string(metacopyBytes)})
	base, err := s.Import(bytes.NewReader(testutil.Tar(t, items)), "base", "base.tar")
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// makeRichUpper fills a fresh directory as an overlay upper can look after
// a container ran: every kind of file, whiteouts of both kinds, opaque
// directories in both namespaces, overlay-private xattrs, hard and
// symbolic links, a socket, a metacopy file, hostile names.
func makeRichUpper(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t, testutil.ForWhiteouts)
	up := filepath.Join(t.TempDir(), "upper")
	long := strings.Repeat("n", 255)
	testutil.BuildDir(t, up, []testutil.Item{
		{Path: "app", Kind: testutil.Dir, Mode: 0o750, UID: 1000, GID: 1000, Xattrs: map[string]string{"user.dir": "d", "trusted.overlay.impure": "y"}},
		{Path: "app/hello.sh", Kind: testutil.File, Data: "#!/bin/sh\necho hi\n", Mode: 0o755, Xattrs: map[string]string{"user.note": "kept", "trusted.overlay.origin": "\x00fh"}},
		{Path: "app/sub/again.sh", Kind: testutil.Hardlink, Data: "app/hello.sh"},
		{Path: "app/third", Kind: testutil.Hardlink, Data: "app/hello.sh"},
		{Path: "app/link", Kind: testutil.Symlink, Data: "hello.sh"},
		{Path: "app/abs", Kind: testutil.Symlink, Data: "/etc/shadow"},
		{Path: "app/up", Kind: testutil.Symlink, Data: "../../../../outside"},
		{Path: "app/gone", Kind: testutil.Whiteout},
		{Path: "app/suid", Kind: testutil.File, Data: "s", Mode: 0o4755},
		{Path: "app/owned", Kind: testutil.File, Data: "o", Mode: 0o640, UID: 1000, GID: 100},
		{Path: "app/fifo", Kind: testutil.Fifo},
		{Path: "app/null", Kind: testutil.Device, Data: "1:3"},
		{Path: "app/sparse", Kind: testutil.File, Data: "end", Sparse: 1 << 20},
		{Path: "app/empty", Kind: testutil.Dir},
		{Path: "app/" + long, Kind: testutil.File, Data: "long name"},
		{Path: "app/new\nline", Kind: testutil.File, Data: "odd name"},
		{Path: "x", Kind: testutil.Dir, Xattrs: map[string]string{"trusted.overlay.opaque": "x"}},
		{Path: "x/a", Kind: testutil.XattrWhiteout},
		{Path: "x/b", Kind: testutil.File, Xattrs: map[string]string{"user.overlay.whiteout": "y"}},
		{Path: "x/c", Kind: testutil.File, Data: "c"},
		{Path: "etc", Kind: testutil.Dir, Xattrs: map[string]string{"trusted.overlay.opaque": "y", "trusted.overlay.origin": "x"}},
		{Path: "etc/hosts", Kind: testutil.File, Data: "127.0.0.1 localhost\n"},
		{Path: "usr", Kind: testutil.Dir, Xattrs: map[string]string{"user.overlay.opaque": "y", "user.overlay.overlay.mine": "escaped"}},
		{Path: "usr/lib/x.so", Kind: testutil.File, Data: "elf"},
		{Path: "ro", Kind: testutil.Dir, Mode: 0o555},
		{Path: "ro/gone", Kind: testutil.XattrWhiteout, Mode: 0o444},
		{Path: "var/log/app.log", Kind: testutil.File, Data: "log\n", Xattrs: map[string]string{"trusted.overlay.origin": "o", "trusted.overlay.nlink": "U+1"}},
		{Path: "data/orig", Kind: testutil.File, Mode: 0o600, Xattrs: map[string]string{"trusted.overlay.metacopy": ""}},
	})
	// The metacopy file: the size of its lower file, no blocks.
	if err := os.Truncate(filepath.Join(up, "data/orig"), int64(len(metacopyBytes))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(up, "app/sock"), unix.S_IFSOCK|0o755, 0); err != nil {
		t.Fatal(err)
	}
	// Times after the last change, with nanoseconds: kept by the layer.
	if err := testutil.SetTimesBelow(up, testutil.FixedTime.Add(123456789*time.Nanosecond)); err != nil {
		t.Fatal(err)
	}
	return up
}

// describeLayer lists what the layer directory dir holds, a line per
// file: type, mode, owner, size, mtime, device numbers, link target, a
// hash of the data, the xattrs, and the first name of its inode when it
// has several. The root, and the times of whiteouts (not in the tarball),
// are left out.
func describeLayer(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	first := map[uint64]string{}
	err := dirwalk.Walk(dir, func(e *dirwalk.Entry) error {
		st := &e.Stat
		line := fmt.Sprintf("%q %o %d:%d", e.Path, st.Mode, st.Uid, st.Gid)
		typ := st.Mode & unix.S_IFMT
		if typ == unix.S_IFCHR && st.Rdev == 0 {
			line += " whiteout"
		} else {
			line += fmt.Sprintf(" mtime=%d", st.Mtim.Nano())
		}
		switch typ {
		case unix.S_IFREG:
			f, err := e.Open()
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" size=%d data=%x", st.Size, h.Sum(nil)[:8])
		case unix.S_IFLNK:
			target, err := e.Readlink()
			if err != nil {
				return err
			}
			line += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			line += fmt.Sprintf(" rdev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if typ != unix.S_IFDIR && st.Nlink > 1 {
			if f, ok := first[st.Ino]; ok {
				line += " link=" + f
			} else {
				first[st.Ino] = e.Path
			}
		}
		xattrs, err := listXattrs(e.ProcPath(), e.Path)
		if err != nil {
			return err
		}
		for _, k := range sortedKeys(xattrs) {
			line += fmt.Sprintf(" %s=%q", k, xattrs[k])
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMoveUpperMatchesCopy: the layer a moved upper becomes is the layer
// the copying path makes of the same upper: the same files, modes, owners,
// times, data, xattrs and hard links, the same DiffID, digest and size in
// the image.
func TestMoveUpperMatchesCopy(t *testing.T) {
	created := v1.Time{Time: time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)}
	commit := func(move bool) (*Store, Image, string) {
		s := newStore(t)
		base := moveBase(t, s)
		up := makeRichUpper(t)
		img, err := s.CommitUpper(&base, UpperCommit{UpperDir: up, Move: move, Name: "final:1",
			History: v1.History{Created: created, CreatedBy: "RUN make"}})
		if err != nil {
			t.Fatalf("commit (move %v): %v", move, err)
		}
		return s, img, up
	}
	cs, copied, copiedUp := commit(false)
	ms, moved, movedUp := commit(true)
	// The bases differ in their time of import: compare the new layer's
	// descriptor and history.
	last := func(s *Store, img Image) (v1.Descriptor, v1.Hash, v1.History) {
		m, err := s.manifest(img.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		cfg := img.Config
		return m.Layers[len(m.Layers)-1], cfg.RootFS.DiffIDs[len(cfg.RootFS.DiffIDs)-1], cfg.History[len(cfg.History)-1]
	}
	cd, cdiff, ch := last(cs, copied)
	md, mdiff, mh := last(ms, moved)
	if !reflect.DeepEqual(cd, md) || cdiff != mdiff || !reflect.DeepEqual(ch, mh) {
		t.Errorf("moved: layer %+v, diff_id %s, history %+v; copied: %+v, %s, %+v", md, mdiff, mh, cd, cdiff, ch)
	}
	top := func(s *Store, img Image) Layer {
		l, err := s.Layer(img.Layers[len(img.Layers)-1])
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	cl, ml := top(cs, copied), top(ms, moved)
	if cl.DiffID != ml.DiffID || cl.Size != ml.Size {
		t.Errorf("moved layer: DiffID %s, size %d; copied: %s, %d", ml.DiffID, ml.Size, cl.DiffID, cl.Size)
	}
	want, got := describeLayer(t, cs.LayerDir(cl.ID)), describeLayer(t, ms.LayerDir(ml.ID))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("moved layer differs from the copied one:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	for _, l := range want {
		if strings.Contains(l, "overlay.") && !strings.Contains(l, `trusted.overlay.opaque="y"`) {
			t.Errorf("the layer keeps an overlay xattr: %s", l)
		}
	}
	if _, err := os.Lstat(movedUp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the moved upper is still there: %v", err)
	}
	if _, err := os.Lstat(copiedUp); err != nil {
		t.Errorf("the copied upper is gone: %v", err)
	}
	// The blob serves save and push: the tarball of the layer.
	for _, s := range []*Store{cs, ms} {
		rc, err := s.OpenBlob(ml.DiffID)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, rc)
		rc.Close()
		if d := Digest(fmt.Sprintf("sha256:%x", h.Sum(nil))); d != ml.DiffID {
			t.Errorf("blob %s holds %s", ml.DiffID.Short(), d.Short())
		}
	}
	if ents, _ := os.ReadDir(ms.path(tmpDir)); len(ents) != 0 {
		t.Errorf("tmp/ keeps %d entries after the commit", len(ents))
	}
}

// TestMoveUpperRefusals: an upper the copying path refuses is refused
// before it is moved, with the same error, and is left as it was.
func TestMoveUpperRefusals(t *testing.T) {
	for _, c := range []struct {
		name  string
		items []testutil.Item
		max   int64
		want  string
	}{
		{name: "aufs name", items: testutil.Spec("etc/", "etc/.wh.passwd"), want: "/etc/.wh.passwd: a file whose name starts with"},
		{name: "aufs dir", items: testutil.Spec(".wh.etc/", ".wh.etc/f=x"), want: "/.wh.etc: a file whose name starts with"},
		{name: "opaque marker", items: testutil.Spec("etc/", "etc/.wh..wh..opq"), want: "/etc/.wh..wh..opq: a file whose name starts with"},
		{name: "too large", items: []testutil.Item{{Path: "big", Kind: testutil.File, Data: strings.Repeat("x", 64<<10)}}, max: 32 << 10, want: "layer too large"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t)
			s.MaxLayerSize = c.max
			up := filepath.Join(t.TempDir(), "upper")
			testutil.BuildDir(t, up, c.items)
			before := testutil.TreeOf(t, up)
			imgs, _ := s.Images()
			_, err := s.CommitUpper(nil, UpperCommit{UpperDir: up, Move: true, Name: "w:1"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("commit: %v, want an error with %q", err, c.want)
			}
			if c.max != 0 && !errors.Is(err, ErrTooLarge) {
				t.Errorf("error %v is not ErrTooLarge", err)
			}
			if after := testutil.TreeOf(t, up); !reflect.DeepEqual(after, before) {
				t.Errorf("the refused upper changed: %v, was %v", after, before)
			}
			if after, _ := s.Images(); len(after) != len(imgs) {
				t.Error("a refused commit added an image")
			}
			if ents, _ := os.ReadDir(s.path(tmpDir)); len(ents) != 0 {
				t.Errorf("tmp/ keeps %d entries after a refused commit", len(ents))
			}
		})
	}
}

// TestMoveUpperOtherFilesystem: an upper that cannot be renamed into the
// store is copied, and left where it was.
func TestMoveUpperOtherFilesystem(t *testing.T) {
	s := newStore(t)
	up := "/dev/shm/" + filepath.Base(t.TempDir())
	var a, b unix.Stat_t
	if unix.Stat("/dev/shm", &a) != nil || unix.Stat(s.Root(), &b) != nil || a.Dev == b.Dev {
		t.Skip("no /dev/shm on another filesystem than the store")
	}
	testutil.BuildDir(t, up, testutil.Spec("d/", "d/f=data"))
	defer os.RemoveAll(up)
	img, err := s.CommitUpper(nil, UpperCommit{UpperDir: up, Move: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.TreeOf(t, s.LayerDir(img.Layers[0])); !reflect.DeepEqual(got, []string{"d/", "d/f"}) {
		t.Errorf("layer holds %v", got)
	}
	if got := testutil.TreeOf(t, up); !reflect.DeepEqual(got, []string{"d/", "d/f"}) {
		t.Errorf("upper holds %v after the copy", got)
	}
}

// Environment of TestMoveUpperKilledChild.
const (
	killRootEnv  = "COWCACHE_TEST_KILL_ROOT"
	killUpperEnv = "COWCACHE_TEST_KILL_UPPER"
	killStepEnv  = "COWCACHE_TEST_KILL_STEP"
)

// TestMoveUpperKilled: a commit killed at any step of the move leaves the
// store as it was (no layer, no image; the debris goes with the next
// writer), and one that is not killed leaves a complete layer.
func TestMoveUpperKilled(t *testing.T) {
	for _, step := range []string{"packed", "moved", "converting", "synced", ""} {
		name := step
		if name == "" {
			name = "none"
		}
		t.Run(name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			s, err := Open(root)
			if err != nil {
				t.Fatal(err)
			}
			moveBase(t, s)
			layers, _ := s.Layers()
			s.Close()
			up := makeRichUpper(t)
			cmd := exec.Command(os.Args[0], "-test.run=^TestMoveUpperKilledChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), killRootEnv+"="+root, killUpperEnv+"="+up, killStepEnv+"="+step)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			killed := errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
			if killed != (step != "") || (!killed && err != nil) {
				t.Fatalf("child: %v (killed %v)\n%s", err, killed, out)
			}
			s, err = Open(root)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Cleanup(); err != nil {
				t.Fatal(err)
			}
			after, err := s.Layers()
			if err != nil {
				t.Fatal(err)
			}
			ents, _ := os.ReadDir(s.path(layersDir))
			if len(ents) != len(after) {
				t.Errorf("layers/ holds %d directories, %d committed", len(ents), len(after))
			}
			if tmp, _ := os.ReadDir(s.path(tmpDir)); len(tmp) != 0 {
				t.Errorf("tmp/ keeps %d entries after cleanup", len(tmp))
			}
			_, imgErr := s.Image("new")
			if step != "" {
				if len(after) != len(layers) || imgErr == nil {
					t.Errorf("killed at %q: %d layers (%d before), image: %v", step, len(after), len(layers), imgErr)
				}
				return
			}
			if len(after) != len(layers)+1 || imgErr != nil {
				t.Fatalf("%d layers (%d before), image: %v", len(after), len(layers), imgErr)
			}
			img, _ := s.Image("new")
			var top Layer
			for _, l := range after {
				if l.ID == img.Layers[len(img.Layers)-1] {
					top = l
				}
			}
			if top.ID == "" || top.Size == 0 {
				t.Errorf("new layer %+v", top)
			}
			if _, err := os.Stat(filepath.Join(s.LayerDir(top.ID), "etc/hosts")); err != nil {
				t.Errorf("the complete layer lacks a file: %v", err)
			}
		})
	}
}

// TestMoveUpperKilledChild commits the upper of TestMoveUpperKilled by a
// move, and SIGKILLs itself at the step it is told.
func TestMoveUpperKilledChild(t *testing.T) {
	root := os.Getenv(killRootEnv)
	if root == "" {
		t.Skip("run by TestMoveUpperKilled")
	}
	step := os.Getenv(killStepEnv)
	moveHook = func(at string) {
		if at == step {
			unix.Kill(os.Getpid(), unix.SIGKILL)
			time.Sleep(time.Minute)
		}
	}
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base, err := s.Image("base")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitUpper(&base, UpperCommit{UpperDir: os.Getenv(killUpperEnv), Move: true, Name: "new"}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkCommitUpper5000 commits an upper of 5,000 small files (the
// RUN step of issue 16's build) by a move and by the copying path.
func BenchmarkCommitUpper5000(b *testing.B) {
	for _, move := range []bool{true, false} {
		b.Run(fmt.Sprint("move=", move), func(b *testing.B) {
			s := newStore(b)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				up := filepath.Join(b.TempDir(), "upper")
				if err := os.MkdirAll(filepath.Join(up, "d"), 0o755); err != nil {
					b.Fatal(err)
				}
				for j := 0; j < 5000; j++ {
					if err := os.WriteFile(filepath.Join(up, "d", fmt.Sprint("f", j)), []byte(fmt.Sprint(i, j, "\n")), 0o644); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if _, err := s.CommitUpper(nil, UpperCommit{UpperDir: up, Move: move}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
