package builder

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCopyContextSwappedUnderCopy: while COPY reads the context, another
// process swaps a directory of it for a symbolic link to a directory
// outside (renameat2 RENAME_EXCHANGE, in a loop). The outside file must
// never be copied; a copy may fail, but some must succeed.
func TestCopyContextSwappedUnderCopy(t *testing.T) {
	ctx, outside := t.TempDir(), t.TempDir()
	secret := []byte("OUTSIDE THE CONTEXT\n")
	os.WriteFile(filepath.Join(outside, "passwd"), secret, 0o644)
	os.Mkdir(filepath.Join(ctx, "d"), 0o755)
	os.WriteFile(filepath.Join(ctx, "d", "passwd"), []byte("inside\n"), 0o644)
	os.Symlink(outside, filepath.Join(ctx, "l"))
	root, err := openContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d, l := filepath.Join(ctx, "d"), filepath.Join(ctx, "l")
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := unix.Renameat2(unix.AT_FDCWD, d, unix.AT_FDCWD, l, unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("renameat2: %v", err)
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	rootfs := t.TempDir()
	ok := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		for _, src := range []string{"d/passwd", "d", "."} {
			os.RemoveAll(rootfs)
			os.Mkdir(rootfs, 0o755)
			srcs, err := root.sources([]string{src})
			if err != nil {
				continue
			}
			if _, err := digestSources(srcs); err != nil {
				continue
			}
			if copyInto(rootfs, srcs, copyOpts{dest: "/x/"}) == nil {
				ok++
			}
			filepath.Walk(rootfs, func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode().IsRegular() {
					if b, _ := os.ReadFile(p); bytes.Equal(b, secret) {
						t.Fatalf("COPY %s copied the file outside the context to %s", src, strings.TrimPrefix(p, rootfs))
					}
				}
				return nil
			})
		}
	}
	if ok == 0 {
		t.Errorf("no copy succeeded")
	}
}

// TestCopySpecialFiles: as docker's builders, COPY recreates a FIFO of the
// context (a tarball carries it) and refuses a socket (docker's context
// leaves it out); neither is ever opened, so ADD of a FIFO does not hang.
func TestCopySpecialFiles(t *testing.T) {
	ctx := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(ctx, "fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(ctx, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.Mkdir(filepath.Join(ctx, "dir"), 0o755)
	unix.Mkfifo(filepath.Join(ctx, "dir", "fifo"), 0o600)
	os.WriteFile(filepath.Join(ctx, "dir", "file"), []byte("x"), 0o644)
	root, err := openContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	// copy runs COPY (or ADD) of src to /x in a fresh root, and gives up
	// on a copy that hangs.
	copy := func(src string, add bool) (string, error) {
		rootfs := t.TempDir()
		done := make(chan error, 1)
		go func() {
			srcs, err := root.sources([]string{src})
			if err == nil {
				_, err = digestSources(srcs)
			}
			if err == nil {
				err = copyInto(rootfs, srcs, copyOpts{dest: "/x", unpack: add})
			}
			done <- err
		}()
		select {
		case err := <-done:
			return rootfs, err
		case <-time.After(5 * time.Second):
			// Let the hung open go: open the FIFO's other end.
			if f, err := os.OpenFile(filepath.Join(ctx, src), os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
			t.Fatalf("COPY %s (ADD %v) hangs", src, add)
		}
		return "", nil
	}
	for _, add := range []bool{false, true} {
		rootfs, err := copy("fifo", add)
		if err != nil {
			t.Errorf("COPY fifo (ADD %v): %v", add, err)
		} else if fi, err := os.Lstat(filepath.Join(rootfs, "x")); err != nil || fi.Mode() != os.ModeNamedPipe|0o640 {
			t.Errorf("COPY fifo (ADD %v): /x is %v (%v), want a FIFO rw-r-----", add, fi, err)
		}
	}
	if _, err := copy("sock", false); err == nil || !strings.Contains(err.Error(), "socket") {
		t.Errorf("COPY sock: %v, want an error naming a socket", err)
	}
	rootfs, err := copy("dir", false)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(rootfs, "x", "fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("COPY dir: x/fifo is %v (%v), want a FIFO", fi, err)
	}
}

// TestChownIdsFit: --chown ids that do not fit in the kernel's 32-bit
// uid_t (chown would truncate 2^55 to 0, root) are refused, given as
// numbers or through the image's /etc/passwd.
func TestChownIdsFit(t *testing.T) {
	rootfs := t.TempDir()
	os.Mkdir(filepath.Join(rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "etc", "passwd"), []byte("big:x:36028797018963968:0::/:/bin/sh\n"), 0o644)
	for _, spec := range []string{"36028797018963968", "0:4294967296", "4294967295", "big"} {
		if uid, gid, err := parseChown(rootfs, spec); err == nil {
			t.Errorf("--chown=%s: %d:%d, want an error", spec, uid, gid)
		}
	}
	if uid, gid, err := parseChown(rootfs, "4294967294:65534"); err != nil || uid != 4294967294 || gid != 65534 {
		t.Errorf("--chown=4294967294:65534: %d:%d %v", uid, gid, err)
	}
}
