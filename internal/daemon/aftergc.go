package daemon

import "runtime"

// afterEachGC calls fn after every garbage collection of the process,
// on the runtime's finalizer goroutine, until done is closed. It costs
// nothing while the process does not allocate: no timer wakes it.
func afterEachGC(done <-chan struct{}, fn func()) {
	// A sentinel that only the runtime's finalizer table refers to is
	// found unreachable by the next collection, which queues its
	// finalizer; the finalizer arms a new one. It holds a pointer so that
	// it is never one of the tiny allocations that share a block (their
	// finalizers may not run).
	type sentinel struct{ _ *byte }
	var arm func()
	arm = func() {
		runtime.SetFinalizer(&sentinel{}, func(*sentinel) {
			select {
			case <-done:
				return
			default:
			}
			fn()
			arm()
		})
	}
	arm()
}
