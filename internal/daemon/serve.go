package daemon

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/unionfuse/unionfuse/fs"
)

// Serve mounts cfg at merged with fs.Mount, records this process in the
// pid file, calls ready (when not nil) once the union is visible, and
// serves until the union is unmounted. SIGTERM, SIGINT and SIGHUP unmount
// it (lazily when it is busy, so open files keep working until closed).
// With cpuProfile set, a CPU profile of the whole time is written there.
// It returns nil after a clean unmount, or the mount error.
func Serve(merged string, cfg fs.Config, cpuProfile string, ready func()) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	logf := func(format string, args ...any) {
		if cfg.Logger != nil {
			cfg.Logger.Printf(format, args...)
		}
	}

	if cpuProfile != "" {
		stop, err := startCPUProfile(cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	m, err := fs.Mount(merged, cfg)
	if err != nil {
		return err
	}
	resolved, err := ResolveMountpoint(merged)
	if err != nil {
		resolved = merged
	}
	if err := WritePid(resolved); err != nil {
		logf("%v (unionfuse umount will not wait for this daemon)", err)
	}
	defer RemovePid(resolved)
	logf("mounted %s", resolved)
	if ready != nil {
		ready()
	}

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
		case s := <-sigs:
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
