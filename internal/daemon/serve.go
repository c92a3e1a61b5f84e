package daemon

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/unionfuse/unionfuse/fs"
	"github.com/unionfuse/unionfuse/internal/mountinfo"
	"github.com/unionfuse/unionfuse/internal/partial"
)

// StopSignals returns the signals that unmount a union Serve serves:
// SIGTERM, SIGINT and SIGHUP. The caller catches them (signal.Notify) and
// hands the channel to Serve.
func StopSignals() []os.Signal {
	return []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP}
}

// Fetchers is what a union's Config.Fetchers is when it has none: how
// this program finds the fetcher of a lazy lower layer (fs/lazy.go). The
// program sets it (cmd/unionfuse: the registry's partial layers), as a
// Config's function does not pass to a daemon process.
// logf is the daemon's log.
var Fetchers func(lowerDir string, logf func(string, ...any)) (fs.Fetcher, error)

// Serve mounts cfg at merged with fs.Mount, records this process in the
// pid file, calls ready (when not nil) once the union is visible, and
// serves until the union is unmounted. Each signal that arrives on stop
// (see StopSignals) unmounts it, lazily when it is busy, so open files
// keep working until closed; a signal once the union is mounted nowhere
// in this mount namespace any more ends the serving (see WaitUnmounted),
// and the caller is to exit, closing the connection. prof names the profiles to write, if any
// (see Profiles). It returns nil after a clean unmount, or the mount
// error.
func Serve(merged string, cfg fs.Config, prof Profiles, stop <-chan os.Signal, ready func()) error {
	logf := func(format string, args ...any) {
		if cfg.Logger != nil {
			cfg.Logger.Printf(format, args...)
		}
	}

	if cfg.Fetchers == nil && Fetchers != nil {
		cfg.Fetchers = func(dir string) (fs.Fetcher, error) { return Fetchers(dir, logf) }
	}
	if cfg.Fetchers == nil {
		// Served without a fetcher, a partial layer's missing data would
		// read as zeros.
		for _, d := range cfg.Lowers {
			if _, ok := partial.Dir(d); ok {
				return fmt.Errorf("%s is a layer pulled lazily and not complete yet: mount it with unionfuse, not unionfuse-fuse (or complete it: unionfuse pull --lazy=false)", d)
			}
		}
	}

	if prof.CPU != "" {
		stop, err := startCPUProfile(prof.CPU)
		if err != nil {
			return err
		}
		defer stop()
	}
	if cfg.OnIdle == nil {
		// An idle mount gives back what its trimmed node tree held.
		cfg.OnIdle = debug.FreeOSMemory
	}
	// Resolved before the union covers it: after, the Lstat would be a
	// request to this very server.
	resolved, err := ResolveMountpoint(merged)
	if err != nil {
		resolved = merged
	}
	// This process serves the union and never enters it, so fs.Mount
	// skips the poll probe, unless the pid file below is to be written
	// inside the union (a mount over /run or /tmp): its creation would
	// then be a request to this very server.
	cfg.ServerStaysOut = !PidDirWithin(resolved)
	m, err := fs.Mount(merged, cfg)
	if err != nil {
		return err
	}
	defer limitMemory(cfg, m)()
	if prof.Mem != "" {
		// Written after the unmount, while m (and so the node tree) is
		// still referenced: the profile shows what serving the union held.
		defer func() {
			if err := writeHeapProfile(prof.Mem, logf); err != nil {
				logf("%v", err)
			}
			runtime.KeepAlive(m)
		}()
	}
	if err := WritePid(resolved); err != nil {
		logf("%v (unionfuse umount will not wait for this daemon)", err)
	}
	defer RemovePid(resolved)
	// Which mount is this union's: another may come to be stacked on
	// the same mount point.
	mnt, mntErr := mountinfo.Lookup(resolved)
	if ready != nil {
		ready()
	}
	logf("mounted %s", resolved)

	done := make(chan struct{})
	go func() {
		m.Wait()
		close(done)
	}()
	for {
		select {
		case <-done:
			logf("unmounted %s", resolved)
			return nil
		case s := <-stop:
			if mntErr == nil && mnt != nil && !mountedHere(mnt) {
				// Only copies in other mount namespaces are left (see
				// WaitUnmounted), or users of a lazy unmount: they lose it.
				logf("%v: %s is no longer mounted in this mount namespace: stopping", s, resolved)
				return nil
			}
			logf("%v: unmounting %s", s, resolved)
			if err := Unmount(resolved, false); err != nil {
				logf("%v; detaching lazily", err)
				if err := Unmount(resolved, true); err != nil {
					logf("%v", err)
				}
			}
		}
	}
}

// mountedHere reports whether the filesystem of the mount m is mounted
// anywhere in this process's mount namespace.
func mountedHere(m *mountinfo.Info) bool {
	ok, err := mountinfo.HasDevice(m.Major, m.Minor)
	return ok || err != nil
}

// Profiles names the pprof profiles a daemon writes; an empty name means
// that profile is not written.
type Profiles struct {
	// CPU is a CPU profile of the whole time the union is served.
	CPU string
	// Mem is a heap profile written when the union has been unmounted,
	// before the daemon lets go of its node tree, so it shows what
	// serving the union kept live; the runtime's memory statistics are
	// logged with it. The heap is sampled once per 512 KiB allocated
	// unless GODEBUG=memprofilerate=N says otherwise (1 records every
	// allocation).
	Mem string
}

// writeHeapProfile runs a garbage collection, writes a heap profile to
// path and logs the runtime's view of the process's memory.
func writeHeapProfile(path string, logf func(string, ...any)) error {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mb := func(n uint64) float64 { return float64(n) / 1e6 }
	logf("memory: heap live %.1f MB (%d objects), in use %.1f MB, idle %.1f MB (released %.1f MB); stacks %.1f MB; runtime %.1f MB; from the OS %.1f MB; %d GCs",
		mb(ms.HeapAlloc), ms.HeapObjects, mb(ms.HeapInuse), mb(ms.HeapIdle), mb(ms.HeapReleased),
		mb(ms.StackSys), mb(ms.MSpanSys+ms.MCacheSys+ms.BuckHashSys+ms.GCSys+ms.OtherSys), mb(ms.Sys), ms.NumGC)
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}

// startCPUProfile writes a CPU profile to path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
