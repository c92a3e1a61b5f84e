package tests

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// crashOptions are the options of every mount of the crash test: redirects
// (directory renames) and the index (hard-linked copy-ups) on.
const crashOptions = "redirect_dir=on,index=on"

// crashLower fills the lower layer: a big file (its copy-up takes a
// while), a file to rename, a directory to rename, a file to delete and
// two hard links to one file.
func crashLower(t *testing.T, dir string) (big []byte) {
	t.Helper()
	big = make([]byte, 16<<20)
	rand.New(rand.NewSource(2)).Read(big)
	files := map[string][]byte{"big": big, "ren": []byte("renamed file\n"), "d/x": []byte("x\n"), "d/y": []byte("y\n"), "del": []byte("deleted\n"), "h1": []byte("linked\n")}
	for name, data := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, "h1"), filepath.Join(dir, "h2")); err != nil {
		t.Fatal(err)
	}
	return big
}

// crashOps starts, at once, the operations the daemon is killed in the
// middle of, and returns when they have all ended (with ENOTCONN once it
// is dead).
func crashOps(merged string) {
	m := func(p string) string { return filepath.Join(merged, p) }
	ops := []func(){
		func() { // copy-up of a big file, then a write
			if f, err := os.OpenFile(m("big"), os.O_WRONLY, 0); err == nil {
				f.WriteAt([]byte("NEW"), 0)
				f.Close()
			}
		},
		func() { os.Rename(m("ren"), m("ren2")) }, // copy-up, whiteout
		func() { os.Rename(m("d"), m("e")) },      // directory: redirect
		func() { os.Remove(m("del")) },            // whiteout
		func() { // index=on: a hard-linked file's copy-up, then a write
			if f, err := os.OpenFile(m("h1"), os.O_WRONLY, 0); err == nil {
				f.WriteAt([]byte("LINKED"), 0)
				f.Close()
			}
		},
	}
	var wg sync.WaitGroup
	for _, op := range ops {
		wg.Add(1)
		go func() { defer wg.Done(); op() }()
	}
	wg.Wait()
}

// checkCrashView checks that the merged view at dir shows each operation
// either not done or done, never half: no torn file, no name hidden
// without its new name, hard links alike.
func checkCrashView(dir string, big []byte) []string {
	var bad []string
	read := func(p string) ([]byte, bool) {
		b, err := os.ReadFile(filepath.Join(dir, p))
		return b, err == nil
	}
	newBig := append([]byte("NEW"), big[3:]...)
	if b, ok := read("big"); !ok || !bytes.Equal(b, big) && !bytes.Equal(b, newBig) {
		bad = append(bad, fmt.Sprintf("big: torn (%d bytes, present %v)", len(b), ok))
	}
	a, okA := read("ren")
	b, okB := read("ren2")
	switch {
	case okA == okB:
		bad = append(bad, fmt.Sprintf("ren and ren2: both present or both absent (%v)", okA))
	case okA && string(a) != "renamed file\n" || okB && string(b) != "renamed file\n":
		bad = append(bad, fmt.Sprintf("ren/ren2: content %q %q", a, b))
	}
	dx, okD := read("d/x")
	ex, okE := read("e/x")
	dy, _ := read("d/y")
	ey, _ := read("e/y")
	switch {
	case okD == okE:
		bad = append(bad, fmt.Sprintf("d and e: both or neither show x (%v)", okD))
	case okD && (string(dx) != "x\n" || string(dy) != "y\n"), okE && (string(ex) != "x\n" || string(ey) != "y\n"):
		bad = append(bad, fmt.Sprintf("d/e: contents %q %q %q %q", dx, dy, ex, ey))
	}
	if d, ok := read("del"); ok && string(d) != "deleted\n" {
		bad = append(bad, fmt.Sprintf("del: torn %q", d))
	}
	h1, ok1 := read("h1")
	h2, ok2 := read("h2")
	if !ok1 || !ok2 || !bytes.Equal(h1, h2) || string(h1) != "linked\n" && string(h1) != "LINKED\n" {
		bad = append(bad, fmt.Sprintf("h1/h2: %q (%v), %q (%v)", h1, ok1, h2, ok2))
	}
	return bad
}

// crashProgress says which operations the view at dir shows done.
func crashProgress(dir string) string {
	var done []string
	for _, c := range []struct{ name, path, want string }{
		{"copy-up", "big", "NEW"}, {"rename", "ren2", ""}, {"dir rename", "e", ""}, {"hard-link copy-up", "h1", "LINKED"},
	} {
		b, err := os.ReadFile(filepath.Join(dir, c.path))
		if c.want == "" && (err == nil || !os.IsNotExist(err)) || c.want != "" && bytes.HasPrefix(b, []byte(c.want)) {
			done = append(done, c.name)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "del")); os.IsNotExist(err) {
		done = append(done, "delete")
	}
	return "done: " + strings.Join(done, ", ")
}

// TestCrash: the daemon is killed (SIGKILL) at random points of copy-ups,
// renames of files and directories (with redirects), whiteout creations
// and index=on copy-ups of hard-linked files. Each time, the upper then
// mounts, with unionfuse and with the kernel's overlayfs, showing every
// operation done or not done, never half; and the next mount leaves no
// temporary in the work directory, as the kernel's cleans it.
func TestCrash(t *testing.T) {
	testutil.RequireMounts(t)
	base := testDir(t)
	lower := filepath.Join(base, "lower")
	big := crashLower(t, lower)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; i < 12; i++ {
		l := newLayout(t, filepath.Join(base, fmt.Sprint(i)), 0)
		l.Lowers = []string{lower}
		opts := "lowerdir=" + lower + ",upperdir=" + l.Upper + ",workdir=" + l.Work + "," + crashOptions
		mountOnce := func() {
			t.Helper()
			if r := cli(t, "mount", "-o", opts, l.Merged); r.code != 0 {
				t.Fatalf("mount: exit %d: %s", r.code, r.stderr)
			}
		}
		mountOnce()
		rec := daemonOf(t, l.Merged)
		done := make(chan struct{})
		go func() { crashOps(l.Merged); close(done) }()
		delay := time.Duration(rng.Intn(40)) * time.Millisecond
		time.Sleep(delay)
		syscall.Kill(rec.PID, syscall.SIGKILL)
		waitGone(rec, 10*time.Second)
		unix.Unmount(l.Merged, unix.MNT_DETACH)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("operations still blocked 30 s after the daemon died")
		}

		mountOnce()
		rec = daemonOf(t, l.Merged)
		for _, p := range checkCrashView(l.Merged, big) {
			t.Errorf("killed after %v, unionfuse remount: %s", delay, p)
		}
		t.Logf("killed after %v: %s", delay, crashProgress(l.Merged))
		umountCLI(t, l.Merged, rec)
		if ents, _ := os.ReadDir(filepath.Join(l.Work, "work")); len(ents) > 0 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("killed after %v: the work directory holds %s after a mount", delay, strings.Join(names, " "))
		}

		unmount, err := kernelOverlay{index: true}.mount(l)
		if err != nil {
			t.Errorf("killed after %v: %v", delay, err)
			continue
		}
		for _, p := range checkCrashView(l.Merged, big) {
			t.Errorf("killed after %v, kernel overlay: %s", delay, p)
		}
		if err := unmount(); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(filepath.Join(base, fmt.Sprint(i)))
	}
}
