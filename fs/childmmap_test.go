package fs

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The tests serve their mounts from this process. A page fault on a
// mapping of a file of such a mount blocks its thread in the kernel until
// the server answers, and a stop-the-world the Go runtime requests then
// (a garbage collection) waits for that thread forever while the server's
// goroutines are stopped: a deadlock. So mapped access is done by a child
// process: this binary again, told what to do by childMmapEnv.
const childMmapEnv = "UNIONFUSE_FS_TEST_MMAP_WRITE"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childMmapEnv); spec != "" {
		if err := mmapWrite(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// mmapWriteInChild writes b at off of the file at path through a shared
// writable mapping, msyncs it and unmaps it, in a child process.
func mmapWriteInChild(t *testing.T, path string, off int, b byte) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d:%d:%s", childMmapEnv, off, b, path))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mmap write of %s at %d: %v: %s", path, off, err, out)
	}
}

// mmapWrite does what mmapWriteInChild asks, from its "OFF:BYTE:PATH".
func mmapWrite(spec string) error {
	parts := strings.SplitN(spec, ":", 3)
	if len(parts) != 3 {
		return fmt.Errorf("bad %s %q", childMmapEnv, spec)
	}
	off, err1 := strconv.Atoi(parts[0])
	b, err2 := strconv.Atoi(parts[1])
	path := parts[2]
	if err1 != nil || err2 != nil {
		return fmt.Errorf("bad %s %q", childMmapEnv, spec)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	if off >= len(mem) {
		return fmt.Errorf("offset %d beyond the file's %d bytes", off, len(mem))
	}
	mem[off] = byte(b)
	if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
		return err
	}
	return unix.Munmap(mem)
}
