package tests

import (
	"syscall"
	"testing"
	"time"
)

// holderAlive reports whether process pid exists.
func holderAlive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

// TestUserNSHolderEndsWhenIdle: the holder of a user's rootless
// namespace stays while something runs in it (a detached container: its
// monitor and FUSE daemon hold references) and ends by itself a few
// seconds after the last reference is gone, so a run interrupted before
// its cleanup leaves no holder behind (they stayed forever).
func TestUserNSHolderEndsWhenIdle(t *testing.T) {
	e := newContainerEnv(t, requireContainers(t, true, true))
	pid := e.holderPid()
	if !holderAlive(pid) {
		t.Fatalf("no holder after the import (pid %d)", pid)
	}
	mustSucceed(t, "run -d", e.u("run", "-d", "--name", "sleeper", "busybox", "sleep", "60"))
	if p := e.holderPid(); p != pid {
		t.Fatalf("a second holder %d (the first, %d, ended)", p, pid)
	}
	time.Sleep(8 * time.Second) // longer than the holder's idle time
	if !holderAlive(pid) {
		t.Fatal("the holder ended while a container ran in its namespace")
	}
	mustSucceed(t, "rm -f", e.u("rm", "-f", "sleeper"))
	deadline := time.Now().Add(15 * time.Second)
	for holderAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the holder %d still runs 15 s after the last command", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The next command starts a new one.
	mustSucceed(t, "images", e.u("images", "-q"))
	if p := e.holderPid(); !holderAlive(p) || p == pid {
		t.Errorf("after the idle holder ended, images started no new holder (pid %d)", p)
	}
}
