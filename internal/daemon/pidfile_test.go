package daemon

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/internal/testutil"
)

func TestPidFileRoundTrip(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	if os.Geteuid() == 0 {
		t.Skip("as root pid files go to /run/unionfuse; this test uses XDG_RUNTIME_DIR")
	}
	testRoundTrip(t)
}

// testRoundTrip writes, reads and removes a pid file for a fake mountpoint.
func testRoundTrip(t *testing.T) {
	merged := filepath.Join(t.TempDir(), "merged with space")
	if _, err := ReadPid(merged); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadPid before WritePid: %v, want not-exist", err)
	}
	if err := WritePid(merged); err != nil {
		t.Fatal(err)
	}
	r, err := ReadPid(merged)
	if err != nil {
		t.Fatal(err)
	}
	if r.PID != os.Getpid() || r.Merged != merged || !r.Alive() {
		t.Errorf("ReadPid = %+v (alive %v), want this process and %s", r, r.Alive(), merged)
	}
	if _, err := ReadPid(merged + "x"); err == nil {
		t.Error("ReadPid of another mountpoint found a record")
	}
	RemovePid(merged)
	if _, err := ReadPid(merged); err == nil {
		t.Error("pid file still there after RemovePid")
	}
}

func TestPidFileAsRoot(t *testing.T) {
	testutil.RequireRoot(t, "writes to /run/unionfuse")
	testRoundTrip(t)
}

func TestAliveAndWaitExit(t *testing.T) {
	cmd := exec.Command("sleep", "0.2")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep(1):", err)
	}
	start, err := startTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	r := Record{PID: cmd.Process.Pid, Start: start}
	if !r.Alive() {
		t.Fatal("running child not alive")
	}
	if (Record{PID: cmd.Process.Pid, Start: start + 1}).Alive() {
		t.Error("a record with another start time is alive (PID reuse not detected)")
	}
	cmd.Wait()
	if r.Alive() {
		t.Error("exited child still alive")
	}
	if err := WaitExit(r, time.Second); err != nil {
		t.Errorf("WaitExit of an exited process: %v", err)
	}
}

func TestResolveMountpoint(t *testing.T) {
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(d, "real"), 0o755)
	os.Symlink("real", filepath.Join(d, "link"))
	os.Symlink(d, filepath.Join(d, "dirlink"))
	for in, want := range map[string]string{
		filepath.Join(d, "real"):               filepath.Join(d, "real"),
		filepath.Join(d, "link"):               filepath.Join(d, "real"),
		filepath.Join(d, "dirlink", "real"):    filepath.Join(d, "real"),
		filepath.Join(d, "missing"):            filepath.Join(d, "missing"),
		filepath.Join(d, "real", "..", "real"): filepath.Join(d, "real"),
	} {
		got, err := ResolveMountpoint(in)
		if err != nil || got != want {
			t.Errorf("ResolveMountpoint(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
}

// TestPidDirWithin: a union mounted over the pid files' directory or one
// above it (/run, /tmp) covers them; one beside them does not.
func TestPidDirWithin(t *testing.T) {
	d, err := ResolveMountpoint(PidDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{d, filepath.Dir(d), "/"} {
		if !PidDirWithin(dir) {
			t.Errorf("a union at %s does not cover the pid files in %s", dir, d)
		}
	}
	for _, dir := range []string{d + "x", t.TempDir()} {
		if PidDirWithin(dir) {
			t.Errorf("a union at %s covers the pid files in %s", dir, d)
		}
	}
}
