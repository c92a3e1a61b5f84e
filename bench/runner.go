package main

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Runner runs the workloads on the systems and collects the samples.
type Runner struct {
	cfg     *Config
	ws      *Workspace
	repo    string   // module root, where ./cmd/unionfuse is built
	systems []System // in run order
	log     *os.File // the daemons' output
	info    Machine
	notes   []string // about the whole run (fallbacks, warnings)
	// ufVersion says what served unionfuse (which CLI binary) and at
	// which commit.
	ufVersion string
	// ufServe is the binary that serves unions (unionfuse-fuse when it is
	// beside the CLI), which also runs the union server.
	ufServe string
	res     *Results
	start   time.Time
}

// newRunner finds the tools, makes the workspace and builds unionfuse.
func newRunner(cfg *Config) (*Runner, error) {
	r := &Runner{cfg: cfg, start: time.Now()}
	repo, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	r.repo = repo
	for _, tool := range []string{"fio", "fuse-overlayfs", "tar", "find"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found (make bench installs fio and fuse-overlayfs): %w", tool, err)
		}
	}
	if r.ws, err = newWorkspace(cfg.Dir); err != nil {
		return nil, err
	}
	r.logf("workspace %s", r.ws.Root)
	if cfg.Rootless {
		if err := chownTree(r.ws.Root); err != nil {
			return nil, err
		}
	}
	if r.log, err = os.Create(filepath.Join(r.ws.Root, "logs", "daemons.log")); err != nil {
		return nil, err
	}
	ufbin, err := r.buildUnionfuse()
	if err != nil {
		r.close()
		return nil, err
	}
	for _, name := range cfg.Systems {
		switch name {
		case sysNative:
			r.systems = append(r.systems, native{})
		case sysKernel:
			r.systems = append(r.systems, kernel{})
		case sysFuseOv:
			bin, _ := exec.LookPath("fuse-overlayfs")
			d := newFuseOverlayfs(bin, r.log)
			if cfg.Rootless {
				d = rootlessDaemon(d)
			}
			r.systems = append(r.systems, d)
		case sysUnion:
			r.systems = append(r.systems, ufbin)
		case sysUnionNoPT:
			r.systems = append(r.systems, withoutPassthrough(ufbin))
		case sysKernelMC:
			r.systems = append(r.systems, kernel{metacopy: true})
		case sysUnionMC:
			r.systems = append(r.systems, withMetacopy(ufbin))
		case sysUnionServer:
			r.systems = append(r.systems, newUnionServer(filepath.Join(r.ws.Root, "runs"), r.ufServe, filepath.Join(r.ws.Root, "logs", "unions.log"), workloadCred))
		}
	}
	r.info = collectMachine(cfg, r)
	return r, nil
}

// moduleRoot returns the directory of the go.mod above the working
// directory: the harness builds ./cmd/unionfuse from there.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run ufbench inside the unionfuse repository (no go.mod above %s)", dir)
		}
		dir = parent
	}
}

// buildUnionfuse returns the unionfuse system: the CLI, built from
// ./cmd/unionfuse unless -unionfuse names a binary, checked with a first
// mount. With -profile, every mount writes a CPU profile; with
// -memprofile, a heap profile.
func (r *Runner) buildUnionfuse() (*daemon, error) {
	bin := r.cfg.UnionfuseBin
	_, version, err := r.source()
	if err != nil {
		return nil, err
	}
	if bin == "" {
		src, _, _ := r.source()
		bin = filepath.Join(r.ws.Root, "bin", "unionfuse")
		// Built as `make build` builds what is installed: static, without
		// cgo. A cgo build also maps libc and the dynamic loader, 1.3 MB
		// more resident in the daemon.
		// unionfuse-fuse, the small binary that serves unions, beside it
		// (as make build puts it).
		for _, b := range [][2]string{{bin, "./cmd/unionfuse"}, {bin + "-fuse", "./cmd/unionfuse-fuse"}} {
			cmd := exec.Command("go", "build", "-o", b[0], b[1])
			cmd.Dir = src
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
			}
		}
	}
	// The mounts are served by unionfuse-fuse when it is beside the CLI,
	// as podman's mount_program is: it starts in half the time.
	if fi, err := os.Stat(bin + "-fuse"); err == nil && fi.Mode().IsRegular() {
		bin += "-fuse"
	}
	var dirs [2]string // CPU and heap profiles
	for i, d := range []string{r.cfg.Profile, r.cfg.MemProfile} {
		if d == "" {
			continue
		}
		dirs[i] = absPath(d)
		if err := os.MkdirAll(dirs[i], 0o755); err != nil {
			return nil, err
		}
		if r.cfg.Rootless {
			if err := os.Chown(dirs[i], rootlessUID, rootlessGID); err != nil {
				return nil, err
			}
		}
	}
	r.ufServe = absPath(bin)
	cli := newUnionfuse(absPath(bin), dirs[0], dirs[1], r.log)
	if r.cfg.Rootless {
		cli = rootlessDaemon(cli)
	}
	if err := r.smokeTest(cli); err != nil {
		return nil, fmt.Errorf("the unionfuse CLI does not mount: %w", err)
	}
	r.ufVersion = filepath.Base(bin) + " at " + version
	if r.cfg.UnionfuseBin != "" {
		r.ufVersion = "unionfuse CLI " + r.cfg.UnionfuseBin
	}
	return cli, nil
}

// that colleagues' uncommitted changes are not measured.
func (r *Runner) source() (dir, version string, err error) {
	if r.cfg.Rev == "" {
		return r.repo, gitDescribe(r.repo, "--dirty"), nil
	}
	dir = filepath.Join(r.ws.Root, "src")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	cmd := exec.Command("sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", r.repo, r.cfg.Rev, dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("git archive %s: %v: %s", r.cfg.Rev, err, firstLine(string(b)))
	}
	return dir, gitDescribe(r.repo, r.cfg.Rev), nil
}

// smokeTest mounts an empty union with s and unmounts it.
func (r *Runner) smokeTest(s System) error {
	d := filepath.Join(r.ws.Root, "smoke")
	for _, p := range []string{"l", "u", "w", "m"} {
		if err := os.MkdirAll(filepath.Join(d, p), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(d, "l", readyFile), nil, 0o644); err != nil {
		return err
	}
	if r.cfg.Rootless {
		if err := chownTree(d); err != nil {
			return err
		}
	}
	m, err := s.Mount(Union{Lowers: []string{filepath.Join(d, "l")}, Upper: filepath.Join(d, "u"), Work: filepath.Join(d, "w"),
		Merged: filepath.Join(d, "m"), Ready: readyFile, Tag: "smoke"})
	if err != nil {
		return err
	}
	return m.Unmount()
}

// prepare writes the layers, then syncs and drops the caches so that the
// series starts from a clean, settled disk.
func (r *Runner) prepare() error {
	start := time.Now()
	// Whatever was deleted before (an earlier run's workspace) must not
	// slow down the creation of this one.
	if err := dropCaches(); err != nil {
		return err
	}
	steps := []struct {
		what string
		fn   func(*Config) error
	}{
		{"trees", r.ws.prepareTrees},
		{"mount layers", r.ws.prepareMountLayers},
		{"data files", r.ws.prepareData},
		{"chown tree", r.ws.prepareChown},
		{"tarball", r.ws.prepareTarball},
		{"session", r.ws.prepareSession},
	}
	for _, s := range steps {
		t := time.Now()
		if err := s.fn(r.cfg); err != nil {
			return fmt.Errorf("prepare %s: %w", s.what, err)
		}
		r.logf("prepared %s in %.1f s", s.what, time.Since(t).Seconds())
	}
	if r.cfg.Rootless {
		// The user's own layers, as a rootless user has them.
		if err := chownTree(r.ws.Root); err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		r.note("rootless run: the workloads and the FUSE daemons ran as uid %d (fusermount3, no passthrough); the kernel's overlay was mounted by root", rootlessUID)
	}
	if err := dropCaches(); err != nil {
		return err
	}
	r.logf("prepared the workspace in %.1f s", time.Since(start).Seconds())
	return nil
}

// close removes the workspace unless -keep, and closes the daemon log.
func (r *Runner) close() {
	unmountAll()
	if r.log != nil {
		r.log.Close()
	}
	if r.ws == nil {
		return
	}
	if r.cfg.Keep {
		r.logf("kept the workspace %s", r.ws.Root)
		return
	}
	t := time.Now()
	if err := r.ws.remove(); err != nil {
		r.logf("remove the workspace: %v", err)
	}
	r.logf("removed the workspace in %.0f s", time.Since(t).Seconds())
}

// runAll runs every selected workload: for each, Reps rounds of all the
// systems in order (A B C D A B C D ...).
func (r *Runner) runAll() (*Results, error) {
	r.res = newResults(r.cfg, r.info)
	for _, w := range workloads() {
		if !contains(r.cfg.Workloads, w.Name) {
			continue
		}
		for _, m := range w.Metrics {
			r.res.addMetric(m)
		}
		t := time.Now()
		if w.Before != nil {
			if err := w.Before(r); err != nil {
				return nil, fmt.Errorf("%s: %w", w.Name, err)
			}
		}
		for rep := 0; rep < r.cfg.Reps; rep++ {
			for _, s := range r.systems {
				if w.Skip != nil && w.Skip(s.Name()) {
					continue
				}
				vals, err := w.Run(r, s, rep)
				if err != nil {
					r.logf("%s rep %d %s: FAILED: %v", w.Name, rep+1, s.Name(), err)
					r.res.note(w.Metrics[0].Key, s.Name(), fmt.Sprintf("rep %d failed: %s", rep+1, firstLine(err.Error())))
				}
				var parts []string
				for _, m := range w.Metrics {
					if v, ok := vals[m.Key]; ok {
						r.res.add(m.Key, s.Name(), rep, v)
						parts = append(parts, m.Key+" "+formatValue(v, m.Unit))
					}
				}
				if len(parts) > 0 {
					r.logf("%-9s rep %d/%d %-14s %s", w.Name, rep+1, r.cfg.Reps, s.Name(), strings.Join(parts, ", "))
				}
			}
		}
		r.logf("%s done in %.0f s", w.Name, time.Since(t).Seconds())
	}
	r.res.Notes = append(r.res.Notes, r.notes...)
	r.res.finish(time.Since(r.start))
	return r.res, nil
}

// mount makes a fresh union for s (a fresh upper for every run, so that no
// run sees another's writes) and mounts it.
func (r *Runner) mount(s System, tag string, many bool) (*Mount, Union, error) {
	var u Union
	var err error
	if many {
		u, err = r.ws.FreshMany(tag + "-" + s.Name())
	} else {
		u, err = r.ws.Fresh(tag + "-" + s.Name())
	}
	if err != nil {
		return nil, u, err
	}
	m, err := s.Mount(u)
	return m, u, err
}

// logf prints a progress line to stderr.
func (r *Runner) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%5.0fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// note records a remark about the whole run, shown with the results.
func (r *Runner) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.notes = append(r.notes, s)
	r.logf("note: %s", s)
}

// dropCaches writes back dirty data and drops the page cache, dentries
// and inodes (echo 3 > /proc/sys/vm/drop_caches).
func dropCaches() error {
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("drop caches: %w", err)
	}
	return nil
}

// dropCount returns how often anyone has dropped the page cache or the
// slab caches since boot (/proc/vmstat drop_pagecache + drop_slab).
func dropCount() int64 {
	f, err := os.Open("/proc/vmstat")
	if err != nil {
		return -1
	}
	defer f.Close()
	var n int64
	s := bufio.NewScanner(f)
	for s.Scan() {
		var v int64
		if k, rest, ok := strings.Cut(s.Text(), " "); ok && (k == "drop_pagecache" || k == "drop_slab") {
			fmt.Sscan(rest, &v)
			n += v
		}
	}
	return n
}

// errCacheDropped says someone else dropped the caches during a warm run.
var errCacheDropped = errors.New("the page cache was dropped by another process during a warm run")

// warm times fn, a measurement that must find the caches warm, and
// repeats it (up to three times) when another process dropped the caches
// while it ran. It returns the duration of the first clean run.
func warm(fn func() error) (time.Duration, error) {
	for try := 0; try < 3; try++ {
		before := dropCount()
		d, err := timed(fn)
		if err != nil {
			return 0, err
		}
		if dropCount() == before {
			return d, nil
		}
		// Warm up again before the next attempt.
		if err := fn(); err != nil {
			return 0, err
		}
	}
	return 0, errCacheDropped
}

// timed returns how long fn took.
func timed(fn func() error) (time.Duration, error) {
	start := time.Now()
	err := fn()
	return time.Since(start), err
}

// residentFraction returns the fraction of path's pages in the page cache
// (mmap + mincore; it does not fault pages in).
func residentFraction(path string) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return 0, err
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, err
	}
	defer unix.Munmap(mem)
	page := os.Getpagesize()
	vec := make([]byte, (len(mem)+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		return 0, fmt.Errorf("mincore %s: %w", path, errno)
	}
	in := 0
	for _, v := range vec {
		in += int(v & 1)
	}
	return float64(in) / float64(len(vec)), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// nan is a missing value.
var nan = math.NaN()
