package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/unionfuse/unionfuse/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// The systems, in the order every workload runs them (A B C D A B C D ...).
const (
	sysNative = "native"
	sysKernel = "kernel"
	sysFuseOv = "fuse-overlayfs"
	sysUnion  = "unionfuse"
	// sysUnionNoPT is unionfuse with passthrough=off: the data path a
	// mount without root gets (the kernel allows FUSE passthrough only
	// to root). Not in the default run: -systems kernel,unionfuse-nopt.
	sysUnionNoPT = "unionfuse-nopt"
)

// refSystem is the system every figure is divided by.
const refSystem = sysKernel

// Union names the directories of one union: its layers and where it is seen.
type Union struct {
	// Lowers are the read-only layers, top first.
	Lowers []string
	// Upper and Work are a fresh writable layer and its work directory.
	Upper, Work string
	// Merged is the mountpoint, an empty directory.
	Merged string
	// Native is the plain directory that holds the same tree as the union
	// (the union flattened); the native system works there instead.
	Native string
	// Ready is a path relative to the root of the union that exists in the
	// bottom layer: a stat of it through the mount proves the mount is up.
	Ready string
	// Tag names this mount in logs and CPU profiles.
	Tag string
}

// System is one way of presenting a union of directories.
type System interface {
	// Name is the system's short name (sysNative, sysKernel, ...).
	Name() string
	// Mount makes u visible and returns once a stat of u.Ready through it
	// succeeds. The caller must call Unmount on the result.
	Mount(u Union) (*Mount, error)
}

// Mount is one live union, or the native directory standing in for one.
type Mount struct {
	// Dir is where workloads act: the mountpoint, or the native directory.
	Dir string
	// PID is the FUSE daemon's process ID, 0 when there is none.
	PID int
	// Elapsed is the time from the start of the mount (the daemon's start,
	// or the mount system call) until the first stat through it succeeded.
	Elapsed time.Duration

	once    sync.Once
	err     error
	unmount func() error
}

// Unmount detaches the union and reaps its daemon. It is safe to call more
// than once; only the first call acts.
func (m *Mount) Unmount() error {
	m.once.Do(func() {
		if m.unmount != nil {
			m.err = m.unmount()
		}
		forget(m)
	})
	return m.err
}

// live holds every Mount not yet unmounted, so an interrupted run can clean
// up (see unmountAll).
var live = struct {
	sync.Mutex
	m map[*Mount]bool
}{m: make(map[*Mount]bool)}

func remember(m *Mount) {
	live.Lock()
	live.m[m] = true
	live.Unlock()
}

func forget(m *Mount) {
	live.Lock()
	delete(live.m, m)
	live.Unlock()
}

// unmountAll unmounts every live mount (used on interrupt and at exit).
func unmountAll() {
	live.Lock()
	var ms []*Mount
	for m := range live.m {
		ms = append(ms, m)
	}
	live.Unlock()
	for _, m := range ms {
		if err := m.Unmount(); err != nil {
			fmt.Fprintf(os.Stderr, "ufbench: %v\n", err)
		}
	}
}

// waitReady stats path until it succeeds, the deadline passes, or exited
// is closed (the daemon died). It polls every 100 µs, so a mount time is
// known to about 0.1 ms.
func waitReady(path string, exited <-chan struct{}, deadline time.Duration) error {
	end := time.Now().Add(deadline)
	var st unix.Stat_t
	for {
		if err := unix.Stat(path, &st); err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("daemon exited before %s appeared", path)
		default:
		}
		if time.Now().After(end) {
			return fmt.Errorf("%s did not appear within %v", path, deadline)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// isMounted reports whether dir is a mountpoint, from the mount table.
func isMounted(dir string) bool {
	ok, _ := mountinfo.IsMountPoint(dir)
	return ok
}

// native is the plain directory: the physical ceiling.
type native struct{}

// Name implements System.
func (native) Name() string { return sysNative }

// Mount implements System.
func (native) Mount(u Union) (*Mount, error) {
	start := time.Now()
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(u.Native, u.Ready), &st); err != nil {
		return nil, fmt.Errorf("native: stat %s: %w", u.Ready, err)
	}
	return &Mount{Dir: u.Native, Elapsed: time.Since(start)}, nil
}

// kernel is the kernel's overlayfs, mounted with its default options, or
// with metacopy=on (sysKernelMC).
type kernel struct{ metacopy bool }

// Name implements System.
func (k kernel) Name() string {
	if k.metacopy {
		return sysKernelMC
	}
	return sysKernel
}

// Mount implements System.
func (k kernel) Mount(u Union) (*Mount, error) {
	opts := "lowerdir=" + strings.Join(u.Lowers, ":") + ",upperdir=" + u.Upper + ",workdir=" + u.Work
	if k.metacopy {
		opts += ",metacopy=on,redirect_dir=on"
	}
	start := time.Now()
	if err := unix.Mount("overlay", u.Merged, "overlay", 0, opts); err != nil {
		return nil, fmt.Errorf("mount -t overlay %s: %w", u.Merged, err)
	}
	m := &Mount{Dir: u.Merged}
	m.unmount = func() error { return unmountDir(u.Merged) }
	remember(m)
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(u.Merged, u.Ready), &st); err != nil {
		m.Unmount()
		return nil, fmt.Errorf("kernel overlay: stat %s: %w", u.Ready, err)
	}
	m.Elapsed = time.Since(start)
	return m, nil
}

// unmount unmounts dir, retrying for up to two seconds while it is busy:
// go-fuse's server opens a file of its own in the mount right after
// mounting (its "poll hack"), which can overlap an immediate unmount.
func unmount(dir string) error {
	var err error
	for try := 0; try < 40; try++ {
		if err = unix.Unmount(dir, 0); !errors.Is(err, unix.EBUSY) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// unmountDir unmounts dir, lazily (MNT_DETACH) when a plain unmount fails.
func unmountDir(dir string) error {
	err := unmount(dir)
	if err == nil {
		return nil
	}
	if derr := unix.Unmount(dir, unix.MNT_DETACH); derr != nil && !errors.Is(derr, unix.EINVAL) {
		return fmt.Errorf("umount %s: %v; lazy umount: %w", dir, err, derr)
	}
	return fmt.Errorf("umount %s: %w (detached lazily)", dir, err)
}

// daemon is a FUSE union served by a child process in the foreground:
// fuse-overlayfs or the unionfuse CLI. Knowing the
// child's PID lets the harness read its memory and reap it; nothing is ever
// found or killed by name.
type daemon struct {
	name string
	// argv returns the command line that serves u in the foreground.
	argv func(u Union) []string
	// log receives the daemons' stdout and stderr.
	log *os.File
	// cred, when set, is the user the daemon runs as (a rootless run).
	cred *syscall.Credential
}

// Name implements System.
func (d *daemon) Name() string { return d.name }

// layerOptions returns "lowerdir=...,upperdir=...,workdir=..." for u.
func layerOptions(u Union) string {
	return "lowerdir=" + strings.Join(u.Lowers, ":") + ",upperdir=" + u.Upper + ",workdir=" + u.Work
}

// Mount implements System: it starts the daemon and waits for the union.
func (d *daemon) Mount(u Union) (*Mount, error) {
	argv := d.argv(u)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: d.cred}
	if d.log != nil {
		fmt.Fprintf(d.log, "# %s %s: %s\n", time.Now().Format(time.RFC3339), u.Tag, strings.Join(argv, " "))
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", d.name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	m := &Mount{Dir: u.Merged, PID: cmd.Process.Pid}
	m.unmount = func() error { return stopDaemon(d.name, u.Merged, cmd.Process, exited) }
	remember(m)
	if err := waitReady(filepath.Join(u.Merged, u.Ready), exited, 20*time.Second); err != nil {
		m.Unmount()
		return nil, fmt.Errorf("%s: %w (see the daemon log)", d.name, err)
	}
	m.Elapsed = time.Since(start)
	return m, nil
}

// stopDaemon unmounts merged and waits for the daemon p to exit, which it
// does when its mount goes away. When the unmount fails it asks the daemon
// (by its PID) to unmount with SIGTERM, then detaches lazily, and as a last
// resort kills that PID. The child is always reaped (by the goroutine that
// closes exited).
func stopDaemon(name, merged string, p *os.Process, exited <-chan struct{}) error {
	var errs []error
	if isMounted(merged) {
		if err := unmount(merged); err != nil {
			errs = append(errs, fmt.Errorf("umount %s: %w", merged, err))
			p.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
			}
			if isMounted(merged) {
				unix.Unmount(merged, unix.MNT_DETACH)
			}
		}
	} else {
		p.Signal(syscall.SIGTERM)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		errs = append(errs, fmt.Errorf("%s (pid %d) did not exit after the unmount; killed", name, p.Pid))
		p.Kill()
		<-exited
	}
	if isMounted(merged) {
		unix.Unmount(merged, unix.MNT_DETACH)
	}
	return errors.Join(errs...)
}

// newFuseOverlayfs returns Debian's fuse-overlayfs, run as
// fuse-overlayfs -f -o lowerdir=..,upperdir=..,workdir=.. MERGED.
func newFuseOverlayfs(bin string, log *os.File) *daemon {
	return &daemon{name: sysFuseOv, log: log, argv: func(u Union) []string {
		return []string{bin, "-f", "-o", layerOptions(u), u.Merged}
	}}
}

// newUnionfuse returns unionfuse served by the CLI binary, run as
// unionfuse -f -o lowerdir=..,upperdir=..,workdir=.. MERGED. With
// profileDir set, every mount writes a CPU profile there, named after the
// mount's tag; with memProfileDir set, a heap profile (TAG.heap.pprof).
func newUnionfuse(bin, profileDir, memProfileDir string, log *os.File) *daemon {
	return &daemon{name: sysUnion, log: log, argv: func(u Union) []string {
		argv := []string{bin, "-f"}
		if profileDir != "" {
			argv = append(argv, "--cpuprofile", filepath.Join(profileDir, u.Tag+".pprof"))
		}
		if memProfileDir != "" {
			argv = append(argv, "--memprofile", filepath.Join(memProfileDir, u.Tag+".heap.pprof"))
		}
		return append(argv, "-o", layerOptions(u), u.Merged)
	}}
}

// withoutPassthrough returns the unionfuse system d mounting with
// passthrough=off, as sysUnionNoPT.
func withoutPassthrough(d *daemon) *daemon {
	return &daemon{name: sysUnionNoPT, log: d.log, argv: func(u Union) []string {
		argv := d.argv(u)
		opts := argv[len(argv)-2]
		argv[len(argv)-2] = opts + ",passthrough=off"
		return argv
	}}
}

// vmHWM returns the peak resident set size of process pid in bytes
// (VmHWM in /proc/PID/status).
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
