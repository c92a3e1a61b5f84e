package fs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestReadResultOutlivesCopyUp is the race of TestReadDuringCopyUp made
// deterministic: Read's result is taken, the file is copied up through
// another handle, which moves the first to the upper copy, and only then
// is the result read, as go-fuse does after Read has returned. Meanwhile
// the test opens files until one gets the first handle's old descriptor
// number, unless that descriptor is still the lower file, open.
func TestReadResultOutlivesCopyUp(t *testing.T) {
	testutil.RequireFuse(t)
	base := t.TempDir()
	cfg := Config{Lowers: []string{filepath.Join(base, "lower")}, Upper: filepath.Join(base, "upper"),
		Work: filepath.Join(base, "work"), NoPassthrough: true}
	merged := filepath.Join(base, "merged")
	for _, d := range []string{cfg.Lowers[0], cfg.Upper, cfg.Work, merged} {
		os.Mkdir(d, 0o755)
	}
	content := bytes.Repeat([]byte{'A'}, 4096)
	lowerFile := filepath.Join(cfg.Lowers[0], "f")
	os.WriteFile(lowerFile, content, 0o644)
	decoy := filepath.Join(base, "decoy")
	os.WriteFile(decoy, bytes.Repeat([]byte{'B'}, 4096), 0o644)
	m, err := Mount(merged, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()

	r, err := os.Open(filepath.Join(merged, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var h *handle
	m.ov.emu.Lock()
	for _, hs := range m.ov.openHandles {
		for x := range hs {
			h = x
		}
	}
	m.ov.emu.Unlock()
	if h == nil {
		t.Fatal("no open handle")
	}
	h.mu.Lock()
	old := h.fd
	h.mu.Unlock()
	res, errno := h.Read(context.Background(), make([]byte, len(content)), 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	defer res.Done()
	w, err := os.OpenFile(filepath.Join(merged, "f"), os.O_RDWR, 0) // copy-up
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	// A later read (concurrent with the first for the kernel) moves the
	// handle to the upper copy, if the copy-up did not already.
	res2, _ := h.Read(context.Background(), make([]byte, len(content)), 0)
	defer res2.Done()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", old)); l == lowerFile {
			break // still open
		}
		d, err := os.Open(decoy)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if int(d.Fd()) == old {
			break
		}
	}
	b, status := res.Bytes(make([]byte, len(content)))
	if !status.Ok() || !bytes.Equal(b, content) {
		t.Errorf("the read returned %d bytes %q... (%v), want the file's", len(b), b[:min(len(b), 8)], status)
	}
}

// TestReadDuringCopyUp: reads through a handle opened on a lower file go on
// while another handle copies the file up, which moves the first handle to
// the upper copy. The server hands the read's descriptor to go-fuse, which
// reads from it after Read has returned; the lower descriptor must stay
// open until then, or the read hits a closed descriptor, or one that the
// process (here: the test, which shares the server's descriptor table)
// has reused for another file meanwhile.
func TestReadDuringCopyUp(t *testing.T) {
	const (
		nfiles = 1000
		size   = 128 << 10
	)
	content := bytes.Repeat([]byte{'A'}, size)
	merged, _, _ := mountForTest(t, Config{NoPassthrough: true}, func(lower string) {
		for i := range nfiles {
			os.WriteFile(filepath.Join(lower, fmt.Sprintf("f%03d", i)), content, 0o644)
		}
	})
	var st unix.Stat_t
	if err := unix.Stat(merged, &st); err != nil {
		t.Fatal(err)
	}
	// A read whose reply failed never returns: abort the connection then.
	abort := func() {
		os.WriteFile(fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", unix.Minor(st.Dev)), []byte("1"), 0)
	}
	decoy := filepath.Join(t.TempDir(), "decoy")
	os.WriteFile(decoy, bytes.Repeat([]byte{'B'}, size), 0o644)

	var bad atomic.Value
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; i < nfiles && time.Now().Before(deadline) && bad.Load() == nil; i++ {
		p := filepath.Join(merged, fmt.Sprintf("f%03d", i))
		var readers []*os.File
		for range 4 {
			r, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			readers = append(readers, r)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, r := range readers {
			wg.Add(1)
			go func() { // reads that reach the server: the page cache is dropped each time
				defer wg.Done()
				buf := make([]byte, 64<<10)
				for off := int64(0); ; off = (off + int64(len(buf))) % size {
					select {
					case <-stop:
						return
					default:
					}
					unix.Fadvise(int(r.Fd()), 0, 0, unix.FADV_DONTNEED)
					n, err := r.ReadAt(buf, off)
					if err != nil || n != len(buf) || !bytes.Equal(buf, content[:n]) {
						bad.Store(fmt.Sprintf("%s: read at %d: %d bytes %q..., %v", filepath.Base(p), off, n, buf[:min(n, 8)], err))
						return
					}
				}
			}()
		}
		for range 3 {
			wg.Add(1)
			go func() { // descriptor numbers closed by the server are reused at once
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if f, err := os.Open(decoy); err == nil {
						f.Close()
					}
				}
			}()
		}
		time.Sleep(500 * time.Microsecond)
		w, err := os.OpenFile(p, os.O_RDWR, 0) // copy-up
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		time.Sleep(500 * time.Microsecond)
		close(stop)
		waited := make(chan struct{})
		go func() { wg.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			abort()
			t.Fatalf("%s: a read through a handle moved by copy-up never returned", filepath.Base(p))
		}
		for _, r := range readers {
			r.Close()
		}
	}
	if msg := bad.Load(); msg != nil {
		t.Fatalf("a read through a handle moved by copy-up: %s", msg)
	}
}
