package runner

import (
	"runtime"
	"sync"
)

// A child started with a parent-death signal (the container's init, the
// port relay's socket helper) gets it when the *thread* that forked it
// ends, not the process. Go ends a thread when a goroutine locked to it
// returns without unlocking, as socketIn's does when it cannot go back to
// its own network namespace (rootless: the monitor may enter the
// container's namespace but not return to the host's). Had that thread
// forked the init, the container was killed (exit 137) at its first
// published-port connection. So such children are forked on one thread
// kept for the life of the process.

var spawnThread struct {
	once sync.Once
	work chan func()
}

// onSpawnThread runs f on the process's spawn thread and returns when f
// has returned. f may lock the thread again and change its namespaces;
// what it leaves changed stays for the next f.
func onSpawnThread(f func()) {
	spawnThread.once.Do(func() {
		spawnThread.work = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for f := range spawnThread.work {
				f()
			}
		}()
	})
	done := make(chan struct{})
	spawnThread.work <- func() {
		defer close(done)
		f()
	}
	<-done
}
