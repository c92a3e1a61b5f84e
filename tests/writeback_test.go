package tests

// The kernel's writeback cache (fs/writeback.go): on where no passthrough
// serves the data (every mount without root; here -o passthrough=off as
// root), off with writeback=off. What a user can observe: a write(2) is in
// the merged view at once and in the upper layer once fsync(2), close(2)
// or the unmount has sent it; files opened for writing only, O_APPEND,
// shared mappings, truncation and times behave as on the kernel's overlay
// (TestDifferential compares the rest operation by operation).

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/fs"
	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// mountWriteback mounts a union of one lower layer holding lowerFiles,
// without passthrough and with the writeback mode given.
func mountWriteback(t *testing.T, mode fs.WritebackMode, lowerFiles map[string]string) (layout, func()) {
	t.Helper()
	testutil.RequireMounts(t)
	l := newLayout(t, t.TempDir(), 1)
	for name, data := range lowerFiles {
		if err := os.WriteFile(filepath.Join(l.Lowers[0], name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := fs.Mount(l.Merged, fs.Config{Lowers: l.Lowers, Upper: l.Upper, Work: l.Work, NoPassthrough: true, Writeback: mode})
	if err != nil {
		t.Fatal(err)
	}
	unmount := func() {
		if err := m.Unmount(); err != nil {
			unix.Unmount(l.Merged, unix.MNT_DETACH)
			t.Error(err)
		}
	}
	return l, unmount
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteback(t *testing.T) {
	lower := map[string]string{"f": "hello\n", "big": strings.Repeat("0123456789", 1000)}

	t.Run("a write is in the upper layer after fsync or close, not before", func(t *testing.T) {
		l, unmount := mountWriteback(t, fs.WritebackAuto, lower)
		defer unmount()
		f := openWriteAt(t, filepath.Join(l.Merged, "f"), "J", 0)
		defer f.Close()
		// (Before the merged file is read: a close(2) of any descriptor
		// of the file sends what the kernel holds.)
		if got := readFile(t, filepath.Join(l.Upper, "f")); got != "hello\n" {
			t.Errorf("upper f = %q before fsync: the write went through at once (no writeback cache?)", got)
		}
		if got := readFile(t, filepath.Join(l.Merged, "f")); got != "Jello\n" {
			t.Errorf("merged f = %q right after the write", got)
		}
		f.WriteAt([]byte("Y"), 1)
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(l.Upper, "f")); got != "JYllo\n" {
			t.Errorf("upper f = %q after fsync", got)
		}
		f.WriteAt([]byte("Z"), 2)
		f.Close()
		if got := readFile(t, filepath.Join(l.Upper, "f")); got != "JYZlo\n" {
			t.Errorf("upper f = %q after close", got)
		}
	})

	t.Run("writeback=off writes through", func(t *testing.T) {
		l, unmount := mountWriteback(t, fs.WritebackOff, lower)
		defer unmount()
		f := openWriteAt(t, filepath.Join(l.Merged, "f"), "J", 0)
		defer f.Close()
		if got := readFile(t, filepath.Join(l.Upper, "f")); got != "Jello\n" {
			t.Errorf("upper f = %q right after the write with writeback=off", got)
		}
	})

	t.Run("opened for writing only, a partial page", func(t *testing.T) {
		l, unmount := mountWriteback(t, fs.WritebackAuto, lower)
		defer unmount()
		openWriteAt(t, filepath.Join(l.Merged, "big"), "abc", 5000).Close()
		want := []byte(lower["big"])
		copy(want[5000:], "abc")
		for _, p := range []string{filepath.Join(l.Merged, "big"), filepath.Join(l.Upper, "big")} {
			if got := readFile(t, p); got != string(want) {
				t.Errorf("%s: the page around the write was not read back (%d bytes, differs at %d)", p, len(got), firstDiff(got, string(want)))
			}
		}
	})

	t.Run("O_APPEND from two descriptors", func(t *testing.T) {
		l, unmount := mountWriteback(t, fs.WritebackAuto, lower)
		defer unmount()
		p := filepath.Join(l.Merged, "log")
		a, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			a.WriteString("a" + string(rune('0'+i)) + "\n")
			b.WriteString("b" + string(rune('0'+i)) + "\n")
		}
		const want = "a0\nb0\na1\nb1\na2\nb2\n"
		if st, _ := a.Stat(); st.Size() != int64(len(want)) {
			t.Errorf("fstat size %d, want %d", st.Size(), len(want))
		}
		a.Close()
		b.Close()
		if got := readFile(t, filepath.Join(l.Upper, "log")); got != want {
			t.Errorf("upper log = %q, want %q", got, want)
		}
	})

	t.Run("times and size reach the upper layer", func(t *testing.T) {
		l, unmount := mountWriteback(t, fs.WritebackAuto, lower)
		defer unmount()
		p := filepath.Join(l.Merged, "g")
		os.WriteFile(p, []byte("0123456789"), 0o644)
		old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		os.Chtimes(p, old, old)
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(4)
		f.WriteAt([]byte("xy"), 8) // a hole from 4 to 8
		var merged unix.Stat_t
		unix.Fstat(int(f.Fd()), &merged)
		if merged.Size != 10 || !time.Unix(merged.Mtim.Unix()).After(old) {
			t.Errorf("after truncate and write: size %d, mtime %v", merged.Size, time.Unix(merged.Mtim.Unix()))
		}
		f.Close()
		unix.Stat(p, &merged)
		var upper unix.Stat_t
		unix.Stat(filepath.Join(l.Upper, "g"), &upper)
		if upper.Size != merged.Size || upper.Mtim != merged.Mtim {
			t.Errorf("upper size %d mtime %v; merged size %d mtime %v", upper.Size, upper.Mtim, merged.Size, merged.Mtim)
		}
		if got := readFile(t, filepath.Join(l.Upper, "g")); got != "0123\x00\x00\x00\x00xy" {
			t.Errorf("upper g = %q", got)
		}
		// Created and written within one clock tick, often: the kernel
		// then sends no time of its own, and the upper file gets back
		// its creation time, the kernel's, once released (RELEASE comes
		// after close(2) returns).
		for i := range 20 {
			name := fmt.Sprintf("new%d", i)
			os.WriteFile(filepath.Join(l.Merged, name), []byte("fresh\n"), 0o644)
			unix.Stat(filepath.Join(l.Merged, name), &merged)
			if !eventually(2*time.Second, func() bool {
				unix.Stat(filepath.Join(l.Upper, name), &upper)
				return upper.Mtim == merged.Mtim
			}) {
				t.Errorf("%s: upper mtime %v, merged %v", name, upper.Mtim, merged.Mtim)
			}
		}
	})

	t.Run("truncate(2) to the size a file has keeps its mtime, in the upper layer too", func(t *testing.T) {
		l, unmount := mountWriteback(t, fs.WritebackAuto, lower)
		defer unmount()
		old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		for _, name := range []string{"f", "new"} { // a lower file (copied up by the truncation), an upper one
			p := filepath.Join(l.Merged, name)
			if name == "new" {
				os.WriteFile(p, []byte("hello\n"), 0o644)
			}
			os.Chtimes(p, old, old)
			if err := unix.Truncate(p, 6); err != nil {
				t.Fatal(err)
			}
			var merged, upper unix.Stat_t
			unix.Stat(p, &merged)
			unix.Stat(filepath.Join(l.Upper, name), &upper)
			if !time.Unix(merged.Mtim.Unix()).Equal(old) || upper.Mtim != merged.Mtim {
				t.Errorf("%s: merged mtime %v, upper %v; want both %v", name, time.Unix(merged.Mtim.Unix()), time.Unix(upper.Mtim.Unix()), old)
			}
		}
	})

	t.Run("a shared mapping written after close reaches the upper layer by the unmount", func(t *testing.T) {
		// Served by a daemon of its own: a page fault on a mapping this
		// process served itself could wait on a stopped world.
		testutil.RequireMounts(t)
		l := newLayout(t, t.TempDir(), 1)
		os.WriteFile(filepath.Join(l.Lowers[0], "big"), []byte(lower["big"]), 0o644)
		mustOK(t, "unionfuse mount", cli(t, "mount", "-o", "passthrough=off", l.Lowers[0], l.Upper, l.Work, l.Merged))
		mounted := true
		defer func() {
			if mounted {
				unix.Unmount(l.Merged, unix.MNT_DETACH)
			}
		}()
		f, err := os.OpenFile(filepath.Join(l.Merged, "big"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		mem, err := unix.Mmap(int(f.Fd()), 0, 8192, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		copy(mem[100:], "mapped")
		unix.Munmap(mem)
		mustOK(t, "unionfuse umount", cli(t, "umount", l.Merged))
		mounted = false
		if got := readFile(t, filepath.Join(l.Upper, "big")); len(got) != 10000 || got[100:106] != "mapped" {
			t.Errorf("upper big after the unmount: %d bytes, %q at 100", len(got), got[100:min(106, len(got))])
		}
	})

	t.Run("writeback=on with index=on is refused", func(t *testing.T) {
		cfg := fs.Config{Lowers: []string{t.TempDir()}, Upper: t.TempDir(), Work: t.TempDir(), Index: true, Writeback: fs.WritebackOn}
		if err := cfg.Validate(t.TempDir()); err == nil || !strings.Contains(err.Error(), "writeback=on cannot be used with index=on") {
			t.Errorf("Validate: %v", err)
		}
	})
}

// openWriteAt opens path for writing only, writes data at off and returns the
// file, open.
func openWriteAt(t *testing.T, path, data string, off int64) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(data), off); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return f
}

// firstDiff is the first offset where a and b differ.
func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestWritebackRootless writes, as an unprivileged user on its own mount,
// a file it may write but not read (mode 0200): the server cannot open it
// for reading as the writeback cache wants, and serves it without the page
// cache instead.
func TestWritebackRootless(t *testing.T) {
	testutil.RequireMounts(t)
	requireTools(t, "setpriv", "fusermount3")
	bin := unionfuseBinary(t)
	openFuseDevice(t)
	dir := worldDir(t)
	l := newLayout(t, dir, 1)
	os.WriteFile(filepath.Join(dir, "dots"), bytes.Repeat([]byte{'.'}, 6000), 0o644)
	filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, nobody, nobody) })
	script := strings.Join([]string{
		"set -e",
		bin + " mount " + l.Lowers[0] + " " + l.Upper + " " + l.Work + " " + l.Merged,
		// (Made in the upper layer: a copy-up of a lower file its owner
		// may not read fails without root, as it does on the kernel's
		// overlay mounted by an unprivileged user in fusermount3 style.)
		"cp " + dir + "/dots " + l.Merged + "/w && chmod 0200 " + l.Merged + "/w",
		// dd opens with O_WRONLY: a partial page in the middle.
		"printf abc | dd of=" + l.Merged + "/w bs=1 seek=5000 conv=notrunc status=none",
		"printf new > " + l.Merged + "/n && chmod 0200 " + l.Merged + "/n",
		"printf again >> " + l.Merged + "/n",
		bin + " umount " + l.Merged,
	}, "\n")
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+dir, "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		unix.Unmount(l.Merged, unix.MNT_DETACH)
		t.Fatalf("as uid %d: %v\n%s", nobody, err, out)
	}
	want := bytes.Repeat([]byte{'.'}, 6000)
	copy(want[5000:], "abc")
	if got := readFile(t, filepath.Join(l.Upper, "w")); got != string(want) {
		t.Errorf("upper w: %d bytes, differs at %d", len(got), firstDiff(got, string(want)))
	}
	if got := readFile(t, filepath.Join(l.Upper, "n")); got != "newagain" {
		t.Errorf("upper n = %q, want newagain", got)
	}
}
