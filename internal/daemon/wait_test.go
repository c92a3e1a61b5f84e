package daemon

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// startChild starts sh -c script and returns its record; the child is
// killed and reaped when t ends.
func startChild(t *testing.T, script string) Record {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Skip("no sh:", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	start, err := startTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// sh has its handlers once it runs the command after them.
	time.Sleep(100 * time.Millisecond)
	return Record{PID: cmd.Process.Pid, Start: start, Merged: "/nonexistent"}
}

func TestWaitExitEndsWithTheProcess(t *testing.T) {
	r := startChild(t, "sleep 0.3")
	began := time.Now()
	if err := WaitExit(r, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// An exit is an event (pidfd): no polling step adds to it.
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("WaitExit returned %v after the exit", took)
	}
	r = startChild(t, "sleep 30")
	if err := WaitExit(r, 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("WaitExit of a running process: %v", err)
	}
	if !r.Alive() {
		t.Error("WaitExit ended the process it waited for")
	}
}

func TestWaitUnmountedTellsTheDaemonToStop(t *testing.T) {
	r := startChild(t, "sleep 30")
	began := time.Now()
	if err := WaitUnmounted(r, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < staleGrace || took > staleGrace+2*time.Second {
		t.Errorf("WaitUnmounted took %v; want a little over %v", took, staleGrace)
	}
	if r.Alive() {
		t.Error("still alive after WaitUnmounted")
	}

	// One that does not stop on SIGTERM is reported.
	r = startChild(t, "trap '' TERM; sleep 30")
	if err := WaitUnmounted(r, 1500*time.Millisecond); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("WaitUnmounted of a process that ignores SIGTERM: %v", err)
	}
}
