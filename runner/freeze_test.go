package runner

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestProcessHelpers checks what the SIGSTOP fallback reads of a process
// in /proc (parentOf, commOf, isStopped) on a child of the test's own.
func TestProcessHelpers(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skipf("sleep: %v", err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	if got := parentOf(pid); got != os.Getpid() {
		t.Errorf("parentOf(child) = %d, want %d", got, os.Getpid())
	}
	if got := commOf(pid); got != "sleep" {
		t.Errorf("commOf(child) = %q, want sleep", got)
	}
	if isStopped(pid) {
		t.Errorf("a running child is stopped")
	}
	syscall.Kill(pid, syscall.SIGSTOP)
	waitStopped(map[int]bool{pid: true})
	if !isStopped(pid) {
		t.Errorf("a child stopped with SIGSTOP is not stopped")
	}
	continuePids(map[int]bool{pid: true})
	deadline := time.Now().Add(5 * time.Second)
	for isStopped(pid) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if isStopped(pid) {
		t.Errorf("a child continued with SIGCONT is still stopped")
	}
	if parentOf(1<<22+1) != 0 || commOf(1<<22+1) != "" || !isStopped(1<<22+1) {
		t.Errorf("a pid that does not exist: parentOf %d, commOf %q, isStopped %v", parentOf(1<<22+1), commOf(1<<22+1), isStopped(1<<22+1))
	}
}
