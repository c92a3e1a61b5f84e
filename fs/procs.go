package fs

import (
	"os"
	"runtime"
	"sync"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// go-fuse keeps up to GOMAXPROCS+1 goroutines blocked in read(2) on
// /dev/fuse (at least 3), each holding a P of the Go scheduler while it
// waits. With as many Ps as CPUs, every P is soon held by a waiting
// reader: the runtime's sysmon then takes the Ps back from them every
// 20 µs and hands them to threads it wakes for nothing, and it never
// backs off into its long sleep. On an untar that was a thread switch and
// a futex call per request beyond the request's own (docs/benchmarks.md,
// "Untar: the Go scheduler around /dev/fuse"). One P more than go-fuse's
// readers leaves one idle while they all wait or one of them handles a
// request, so a reader blocked in read keeps its P (the runtime retakes
// it only after 10 ms when another P is idle) and sysmon sleeps. More
// gained nothing (untar of 2,000 files: 3 Ps 750 ms, 4 to 8 Ps 619-631).
//
// go-fuse sizes its readers from GOMAXPROCS when a server is created, so
// each server is created at the runtime's own count (the CPUs it may use)
// and the count is raised after; a GOMAXPROCS set by the user is left
// alone.

// extraProcs is how many Ps the process runs with beyond go-fuse's
// readers.
const extraProcs = 1

var (
	// procsMu serialises servers' creation with the changes of
	// GOMAXPROCS around it (the union server mounts concurrently).
	procsMu sync.Mutex
	// baseProcs is GOMAXPROCS as the runtime chose it at start.
	baseProcs = runtime.GOMAXPROCS(0)
	// userProcs reports whether the user set GOMAXPROCS.
	userProcs = os.Getenv("GOMAXPROCS") != ""
)

// fuseReaders returns the most goroutines go-fuse keeps reading requests
// for a server created at GOMAXPROCS procs (fuse.NewServer: procs clamped
// to 2..16, plus one).
func fuseReaders(procs int) int {
	return min(max(procs, 2), 16) + 1
}

// newFuseServer creates and mounts a go-fuse server (fuse.NewServer) and
// leaves the process with Ps enough for its readers (see above).
func newFuseServer(fs fuse.RawFileSystem, mountPoint string, opts *fuse.MountOptions) (*fuse.Server, error) {
	if userProcs {
		return fuse.NewServer(fs, mountPoint, opts)
	}
	procsMu.Lock()
	defer procsMu.Unlock()
	if runtime.GOMAXPROCS(0) != baseProcs {
		runtime.GOMAXPROCS(baseProcs)
	}
	server, err := fuse.NewServer(fs, mountPoint, opts)
	runtime.GOMAXPROCS(fuseReaders(baseProcs) + extraProcs)
	return server, err
}
