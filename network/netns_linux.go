package network

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Running code in another network namespace. setns(2) changes the
// namespace of one thread, so the code runs on a locked thread. Going
// back is not always allowed: a rootless caller is root of its user
// namespace, which owns the containers' and the rootless networks'
// namespaces, but not of the initial one, which owns the host's, so it
// may enter those and never return. A thread that cannot return must
// then end, and with it what it was doing.

// onThreadIn runs fn on a thread of its own in the network namespace h
// or, when h is not open, in a new empty one. The caller's thread never
// changes namespace; fn's thread ends with fn when it cannot go back. fn
// must not fork a child that is to outlive it with a parent-death signal
// (which follows the forking thread), nor start goroutines that depend
// on the namespace.
func onThreadIn(h netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		back, err := enter(h)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = fn()
		if back() {
			runtime.UnlockOSThread()
		} // else the thread ends with this goroutine
		errc <- err
	}()
	return <-errc
}

// InNamespaceOf runs fn on the calling goroutine's thread in the network
// namespace of process pid (pid 0: where it is), so that a child fn forks
// is born there and its parent-death signal stays with this thread. When
// the thread cannot go back to its namespace (rootless, from the host's),
// it stays locked to the goroutine, in pid's namespace: the caller's
// thread must be one kept for that (the runner's spawn thread).
func InNamespaceOf(pid int, fn func() error) error {
	if pid == 0 {
		return fn()
	}
	h, err := netns.GetFromPid(pid)
	if err != nil {
		return fmt.Errorf("the network namespace of process %d: %w", pid, err)
	}
	defer h.Close()
	runtime.LockOSThread()
	back, err := enter(h)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	err = fn()
	if back() {
		runtime.UnlockOSThread()
	}
	return err
}

// enter moves the calling (locked) thread into the network namespace h,
// or into a new empty one when h is not open, and returns the way back,
// which reports whether the thread is back in its namespace.
func enter(h netns.NsHandle) (back func() bool, err error) {
	orig, err := netns.Get()
	if err != nil {
		return nil, err
	}
	if h.IsOpen() {
		err = netns.Set(h)
	} else {
		err = unix.Unshare(unix.CLONE_NEWNET)
	}
	if err != nil {
		orig.Close()
		return nil, fmt.Errorf("enter a network namespace: %w", err)
	}
	return func() bool {
		defer orig.Close()
		return netns.Set(orig) == nil
	}, nil
}
