package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Metric is one figure a workload produces.
type Metric struct {
	// Key names the metric in the JSON and TSV output.
	Key string `json:"key"`
	// Title says what was measured, for the table and the plot.
	Title string `json:"title"`
	// Unit is one of "s", "ms", "GB/s", "IOPS", "MB".
	Unit string `json:"unit"`
	// HigherIsBetter is true for throughputs, false for times and sizes.
	HigherIsBetter bool `json:"higher_is_better"`
	// TargetRatio is issue 4's target for unionfuse relative to kernel
	// overlay (at most this for times, at least this for throughputs);
	// 0 for none.
	TargetRatio float64 `json:"target_ratio,omitempty"`
	// TargetAbs is an absolute target in Unit (at most this), 0 for none.
	TargetAbs float64 `json:"target_abs,omitempty"`
	// NoRatio marks figures that the kernel has no counterpart of
	// (a daemon's memory).
	NoRatio bool `json:"no_ratio,omitempty"`
}

// Workload is one kind of work, run on every system in every repetition.
type Workload struct {
	// Name selects the workload with -workloads.
	Name string
	// Metrics are the figures Run returns, by Key.
	Metrics []Metric
	// Skip, when set, reports the systems the workload does not apply to.
	Skip func(system string) bool
	// Before, when set, runs once before the first repetition.
	Before func(r *Runner) error
	// Run does the work once on s and returns the figures it measured.
	Run func(r *Runner, s System, rep int) (map[string]float64, error)
}

// workloads returns the workloads in run order: everything that only
// reads first, then what creates files, and the mass delete last. On this
// ext4 (no journal) a create storm right after a mass delete is slow even
// natively, so no deletion may precede a timed create.
func workloads() []Workload {
	return append([]Workload{
		{Name: "walk", Run: runWalk, Metrics: []Metric{
			{Key: "walk-find-cold", Title: "metadata walk: find, cold", Unit: "s", TargetRatio: 2.0},
			{Key: "walk-find-warm", Title: "metadata walk: find, warm", Unit: "s", TargetRatio: 1.5},
			{Key: "walk-stat-cold", Title: "metadata walk: find -printf (stat all), cold", Unit: "s", TargetRatio: 2.0},
			{Key: "walk-stat-warm", Title: "metadata walk: find -printf (stat all), warm", Unit: "s", TargetRatio: 1.5},
			{Key: "daemon-rss", Title: "daemon peak RSS after the walk", Unit: "MB", TargetAbs: 20, NoRatio: true},
		}},
		{Name: "readdir", Run: runReaddir, Metrics: []Metric{
			{Key: "readdir-cold", Title: "readdir of the large directory, cold", Unit: "ms", TargetRatio: 2.0},
			{Key: "readdir-warm", Title: "readdir of the large directory, warm", Unit: "ms", TargetRatio: 0.5},
		}},
		{Name: "seqread", Run: runSeqRead, Metrics: []Metric{
			{Key: "seqread-cold", Title: "sequential read of a lower file, cold", Unit: "GB/s", HigherIsBetter: true},
			{Key: "seqread-warm", Title: "sequential read of a lower file, warm", Unit: "GB/s", HigherIsBetter: true, TargetRatio: 0.95},
		}},
		{Name: "randread", Run: runRandRead, Metrics: []Metric{
			{Key: "randread", Title: "4 KiB random reads of a lower file (fio)", Unit: "IOPS", HigherIsBetter: true, TargetRatio: 0.95},
		}},
		{Name: "mount", Run: runMountTime, Skip: func(s string) bool { return s == sysNative }, Metrics: []Metric{
			{Key: "mount-3", Title: "mount until a stat succeeds, 3 lowers", Unit: "ms", TargetAbs: 5},
			{Key: "mount-many", Title: "mount until a stat succeeds, many lowers", Unit: "ms", TargetAbs: 10},
			{Key: "mount-shell", Title: "mount from a shell (command returns, then a stat), 3 lowers", Unit: "ms"},
		}},
		{Name: "create", Run: runCreate, Before: func(*Runner) error { return dropCaches() }, Metrics: []Metric{
			{Key: "create-untar", Title: "create: untar small files + sync", Unit: "s", TargetRatio: 3.0},
		}},
		{Name: "seqwrite", Run: runSeqWrite, Metrics: []Metric{
			{Key: "seqwrite-fsync", Title: "sequential write of a new file + fsync", Unit: "GB/s", HigherIsBetter: true, TargetRatio: 0.9},
		}},
		{Name: "randwrite", Run: runRandWrite, Metrics: []Metric{
			{Key: "randwrite", Title: "4 KiB random writes of an upper file (fio)", Unit: "IOPS", HigherIsBetter: true, TargetRatio: 0.8},
		}},
		{Name: "copyup", Run: runCopyUp, Metrics: []Metric{
			{Key: "copyup", Title: "copy-up: append 1 byte to a lower file", Unit: "s", TargetRatio: 0.6},
			{Key: "copyup-sync", Title: "copy-up: append 1 byte + sync", Unit: "s"},
		}},
		{Name: "chown", Run: runChown, Skip: func(s string) bool { return s == sysNative }, Metrics: []Metric{
			{Key: "chown-sync", Title: "chown -R of a lower tree + sync", Unit: "s", TargetRatio: 2.0},
			{Key: "chmod-sync", Title: "chmod -R of a lower tree + sync", Unit: "s", TargetRatio: 2.0},
			{Key: "chown-upper", Title: "upper after chown -R (du)", Unit: "MB"},
		}},
		{Name: "delete", Run: runDelete, Before: func(*Runner) error { return dropCaches() }, Metrics: []Metric{
			{Key: "delete-rmrf", Title: "delete: rm -rf of a lower subtree", Unit: "s", TargetRatio: 2.0},
		}},
		sessionWorkload(),
		// The memory workloads (memory.go) only read; the huge tree they
		// walk is written when they start, untimed.
	}, memoryWorkloads()...)
}

// withMount mounts a fresh union for s, calls fn, and always unmounts.
func withMount(r *Runner, s System, tag string, many bool, fn func(m *Mount, u Union) error) error {
	m, u, err := r.mount(s, tag, many)
	if err != nil {
		return err
	}
	err = fn(m, u)
	if uerr := m.Unmount(); uerr != nil {
		err = errors.Join(err, uerr)
	}
	return err
}

// command returns a function that runs name args with its standard
// output going to /dev/null (so find's output costs no pipe); standard
// error is kept for the error message.
func command(name string, args ...string) func() error {
	return func() error {
		var stderr strings.Builder
		cmd := exec.Command(name, args...)
		cmd.Stderr = &stderr
		asWorkloadUser(cmd)
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %v: %s", name, err, firstLine(stderr.String()))
		}
		return nil
	}
}

// runWalk walks the 60k-file tree twice per repetition, each on a fresh
// mount with dropped caches: `find DIR` (readdir only), then
// `find DIR -printf ...` (which lstats every entry), each cold and then
// warm. The daemon's peak RSS is read after the second walk.
func runWalk(r *Runner, s System, rep int) (map[string]float64, error) {
	out := map[string]float64{}
	for _, stat := range []bool{false, true} {
		key := "walk-find"
		if stat {
			key = "walk-stat"
		}
		err := withMount(r, s, key, false, func(m *Mount, u Union) error {
			dir := filepath.Join(m.Dir, walkDir)
			walk := command("find", dir)
			if stat {
				walk = command("find", dir, "-printf", "%i %s %m\n")
			}
			cold, w, err := coldWarm(walk, nil)
			if err != nil {
				return err
			}
			out[key+"-cold"], out[key+"-warm"] = cold.Seconds(), w.Seconds()
			if stat && m.PID != 0 {
				hwm, err := vmHWM(m.PID)
				if err != nil {
					return err
				}
				out["daemon-rss"] = float64(hwm) / 1e6
			}
			if rep == 0 {
				// The union must show every file once.
				return checkCount(dir, (r.cfg.WalkDirs+49)/50+r.cfg.WalkDirs+r.cfg.WalkFiles)
			}
			return nil
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// coldWarm drops the caches, times fn (cold), calls between (when not
// nil), then times fn again with the caches as it left them (warm, see
// warm).
func coldWarm(fn func() error, between func()) (cold, w time.Duration, err error) {
	if err := dropCaches(); err != nil {
		return 0, 0, err
	}
	if cold, err = timed(fn); err != nil {
		return 0, 0, err
	}
	if between != nil {
		between()
	}
	w, err = warm(fn)
	return cold, w, err
}

// runReaddir lists the large directory with getdents64 (32 KiB buffer,
// as ls uses) on a fresh mount with dropped caches, then again warm.
func runReaddir(r *Runner, s System, rep int) (map[string]float64, error) {
	out := map[string]float64{}
	err := withMount(r, s, "readdir", false, func(m *Mount, u Union) error {
		dir := filepath.Join(m.Dir, bigDir)
		list := func() error {
			n, err := countDir(dir)
			if err == nil && n != r.cfg.ReaddirEntries {
				err = fmt.Errorf("readdir of %s: %d entries, want %d", dir, n, r.cfg.ReaddirEntries)
			}
			return err
		}
		cold, w, err := coldWarm(list, nil)
		if err != nil {
			return err
		}
		out["readdir-cold"], out["readdir-warm"] = ms(cold), ms(w)
		return nil
	})
	return out, err
}

// countDir returns the number of entries in dir other than . and ..
func countDir(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 32<<10)
	n := 0
	for {
		got, err := unix.Getdents(fd, buf)
		if err != nil {
			return n, err
		}
		if got == 0 {
			return n, nil
		}
		for off := 0; off < got; {
			reclen := int(buf[off+16]) | int(buf[off+17])<<8
			name := buf[off+19 : off+reclen]
			if !(name[0] == '.' && (name[1] == 0 || name[1] == '.' && name[2] == 0)) {
				n++
			}
			off += reclen
		}
	}
}

// runSeqRead reads the big lower file with 1 MiB reads on a fresh mount
// with dropped caches, then again warm; it checks the lower file's pages
// stayed resident between the two.
func runSeqRead(r *Runner, s System, rep int) (map[string]float64, error) {
	out := map[string]float64{}
	size := r.cfg.SeqSize
	err := withMount(r, s, "seqread", false, func(m *Mount, u Union) error {
		path := filepath.Join(m.Dir, seqFile)
		read := func() error { return readAll(path, size) }
		resident := func() {
			if frac, err := residentFraction(filepath.Join(r.ws.Lowers[2], seqFile)); err == nil && frac < 0.99 {
				r.res.note("seqread-warm", s.Name(), fmt.Sprintf("rep %d: only %.0f%% of the lower file was cached before the warm read", rep+1, 100*frac))
			}
		}
		cold, w, err := coldWarm(read, resident)
		if err != nil {
			return err
		}
		out["seqread-cold"], out["seqread-warm"] = gbps(size, cold), gbps(size, w)
		return nil
	})
	return out, err
}

// readAll reads path to the end with 1 MiB reads and checks its size.
func readAll(path string, want int64) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	buf := readBuf()
	var total int64
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if n == 0 {
			break
		}
		total += int64(n)
	}
	if want >= 0 && total != want {
		return fmt.Errorf("read %s: %d bytes, want %d", path, total, want)
	}
	return nil
}

var buf1M []byte

func readBuf() []byte {
	if buf1M == nil {
		buf1M = make([]byte, 1<<20)
	}
	return buf1M
}

// runRandRead runs fio's 4 KiB random reads (psync, one job) on the lower
// rand.dat through the mount, after reading it once so it is cached.
func runRandRead(r *Runner, s System, rep int) (map[string]float64, error) {
	out := map[string]float64{}
	err := withMount(r, s, "randread", false, func(m *Mount, u Union) error {
		path := filepath.Join(m.Dir, randFile)
		if err := readAll(path, r.cfg.RandSize); err != nil {
			return err
		}
		before := dropCount()
		iops, err := runFio(path, "randread", r.cfg.RandSize, r.cfg.FioRuntime)
		if err != nil {
			return err
		}
		if dropCount() != before {
			r.res.note("randread", s.Name(), fmt.Sprintf("rep %d: %v", rep+1, errCacheDropped))
		}
		out["randread"] = iops
		return nil
	})
	return out, err
}

// runMountTime mounts the three lowers, then the -mount-layers small ones,
// each with a fresh upper (after one untimed round, so the binaries and
// the layer roots are cached), and reports the time until a stat through the
// mount succeeded (for the kernel: the mount system call + the stat; for
// the daemons: from the process start); then the three lowers once more
// as from a shell (shellmount.go).
func runMountTime(r *Runner, s System, rep int) (map[string]float64, error) {
	out := map[string]float64{}
	if rep == 0 {
		// Untimed: page in the daemon's binary and the layers' roots.
		for _, many := range []bool{false, true} {
			if err := withMount(r, s, "mount-warmup", many, func(*Mount, Union) error { return nil }); err != nil {
				return out, err
			}
		}
	}
	for _, many := range []bool{false, true} {
		key := "mount-3"
		if many {
			key = "mount-many"
		}
		err := withMount(r, s, key, many, func(m *Mount, u Union) error {
			out[key] = ms(m.Elapsed)
			return nil
		})
		if err != nil {
			return out, err
		}
	}
	if sh, ok := s.(shellMounter); ok {
		u, err := r.ws.Fresh("mount-shell-" + s.Name())
		if err != nil {
			return out, err
		}
		m, err := sh.MountFromShell(u)
		if err != nil {
			return out, err
		}
		out["mount-shell"] = ms(m.Elapsed)
		if err := m.Unmount(); err != nil {
			return out, err
		}
	}
	return out, nil
}

// runCreate extracts the tarball of small files with GNU tar into a new
// directory of the merged view, then syncs; caches are dropped before and
// the tarball is read once, so each run starts the same.
func runCreate(r *Runner, s System, rep int) (map[string]float64, error) {
	out := map[string]float64{}
	err := withMount(r, s, "create", false, func(m *Mount, u Union) error {
		dir := filepath.Join(m.Dir, fmt.Sprintf("t-create-%d", rep))
		if err := asWorkloadUserHere(func() error { return os.Mkdir(dir, 0o755) }); err != nil {
			return err
		}
		if err := dropCaches(); err != nil {
			return err
		}
		if err := readAll(r.ws.Tarball, -1); err != nil {
			return err
		}
		d, err := timed(thenSync(command("tar", "-xf", r.ws.Tarball, "-C", dir)))
		if err != nil {
			return err
		}
		out["create-untar"] = d.Seconds()
		if rep == 0 {
			return checkCount(dir, r.cfg.CreateFiles+(r.cfg.CreateFiles+99)/100)
		}
		return nil
	})
	return out, err
}

// thenSync returns fn followed by sync(2), as one step to time.
func thenSync(fn func() error) func() error {
	return func() error {
		if err := fn(); err != nil {
			return err
		}
		unix.Sync()
		return nil
	}
}

// checkCount checks that the tree under dir holds want entries.
func checkCount(dir string, want int) error {
	n := -1
	err := filepath.WalkDir(dir, func(string, fs.DirEntry, error) error { n++; return nil })
	if err == nil && n != want {
		err = fmt.Errorf("%s holds %d entries, want %d", dir, n, want)
	}
	return err
}

// runSeqWrite writes a new file of -seq-size with 1 MiB writes and
// fsyncs it; the file is removed (from the upper, after the unmount).
func runSeqWrite(r *Runner, s System, rep int) (map[string]float64, error) {
	out := map[string]float64{}
	name := fmt.Sprintf("t-seqwrite-%d.dat", rep)
	size := r.cfg.SeqSize
	var upper string
	err := withMount(r, s, "seqwrite", false, func(m *Mount, u Union) error {
		upper = writtenPath(m, u, name)
		unix.Sync()
		d, err := timed(func() error {
			return asWorkloadUserHere(func() error { return writeFile(filepath.Join(m.Dir, name), size) })
		})
		if err != nil {
			return err
		}
		out["seqwrite-fsync"] = gbps(size, d)
		return nil
	})
	removeWritten(upper)
	return out, err
}

// writeFile writes size bytes to a new file at path with 1 MiB writes,
// then fsyncs and closes it.
func writeFile(path string, size int64) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	buf := readBuf()
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for off := int64(0); off < size; {
		n, err := unix.Write(fd, buf[:min(int64(len(buf)), size-off)])
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("write %s: %w", path, err)
		}
		off += int64(n)
	}
	if err := unix.Fsync(fd); err != nil {
		unix.Close(fd)
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return unix.Close(fd)
}

// writtenPath returns where a file written as name through m lands on
// disk: in the upper layer, or in the native directory.
func writtenPath(m *Mount, u Union, name string) string {
	if m.Dir == u.Native {
		return filepath.Join(u.Native, name)
	}
	return filepath.Join(u.Upper, name)
}

// removeWritten deletes a big file a workload wrote (one unlink: big
// files are removed as soon as they are measured, to save disk space).
func removeWritten(path string) {
	if path != "" {
		os.Remove(path)
	}
}

// runRandWrite runs fio's 4 KiB random writes (psync, one job) on a new
// file of -rand-size in the upper layer; fio lays the file out first,
// untimed.
func runRandWrite(r *Runner, s System, rep int) (map[string]float64, error) {
	out := map[string]float64{}
	name := fmt.Sprintf("t-randwrite-%d.dat", rep)
	var upper string
	err := withMount(r, s, "randwrite", false, func(m *Mount, u Union) error {
		upper = writtenPath(m, u, name)
		unix.Sync()
		iops, err := runFio(filepath.Join(m.Dir, name), "randwrite", r.cfg.RandSize, r.cfg.FioRuntime)
		out["randwrite"] = iops
		return err
	})
	removeWritten(upper)
	unix.Sync()
	return out, err
}

// runCopyUp appends one byte to seq.dat, which lives only in the bottom
// lower layer (cached beforehand): the time of open+write+close, which
// copies the file up, and that plus sync(2). It then checks that the
// lower file was not changed. The native system appends to its hard link
// of the same file and truncates it back afterwards.
func runCopyUp(r *Runner, s System, rep int) (map[string]float64, error) {
	out := map[string]float64{}
	lower := filepath.Join(r.ws.Lowers[2], seqFile)
	size := r.cfg.SeqSize
	var upper string
	isNative, appended := false, false
	err := withMount(r, s, "copyup", false, func(m *Mount, u Union) error {
		isNative = m.Dir == u.Native
		upper = filepath.Join(u.Upper, seqFile)
		if err := readAll(lower, size); err != nil {
			return err
		}
		unix.Sync()
		start := time.Now()
		if err := appendByte(filepath.Join(m.Dir, seqFile)); err != nil {
			return err
		}
		appended = true
		out["copyup"] = time.Since(start).Seconds()
		unix.Sync()
		out["copyup-sync"] = time.Since(start).Seconds()
		return nil
	})
	if appended {
		err = errors.Join(err, checkAppended(lower, upper, size, isNative))
	}
	return out, err
}

// runDelete removes the lower subtree of -delete-files files with rm -rf
// (on the native system: a fresh copy of it per repetition). Caches are
// dropped, then the subtree is walked once untimed, so every system starts
// with its entries looked up.
func runDelete(r *Runner, s System, rep int) (map[string]float64, error) {
	out := map[string]float64{}
	err := withMount(r, s, "delete", false, func(m *Mount, u Union) error {
		dir := filepath.Join(m.Dir, delDir)
		if m.Dir == u.Native {
			dir = filepath.Join(m.Dir, fmt.Sprintf("%s-%d", delDir, rep))
		}
		if err := dropCaches(); err != nil {
			return err
		}
		if err := command("find", dir)(); err != nil {
			return err
		}
		d, err := timed(command("rm", "-rf", dir))
		if err != nil {
			return err
		}
		if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s still exists after rm -rf (%v)", dir, err)
		}
		out["delete-rmrf"] = d.Seconds()
		return nil
	})
	return out, err
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func gbps(size int64, d time.Duration) float64 { return float64(size) / d.Seconds() / 1e9 }
