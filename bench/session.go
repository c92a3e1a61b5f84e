package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// The session workload: one mount doing what a container's union does in
// a row, on cold caches, as issue 16's independent harness measured it.
// The other workloads each start from a fresh mount and warm what they do
// not time (the tarball, the subtree to delete, the file to copy up);
// here one mount, per repetition:
//
//  1. extracts a tarball of -session-files files of 1 to 4,000 bytes in
//     40 directories, then syncs (caches dropped before);
//  2. right after, removes a lower subtree of -session-files one-byte
//     files in 50 directories that nobody has looked up, then syncs;
//  3. appends one byte to the big lower file (seq.dat), whose pages are
//     evicted first, then syncs: a copy-up read from the disk;
//  4. drops the caches and lists the walk tree with find -printf.

const (
	// coldDir is the subtree the session removes, in l/1 (native:
	// coldDir-R, a fresh copy per repetition).
	coldDir = "cold"
	// sessionTarball is the archive the session extracts.
	sessionTarball = "session.tar"
)

// sessionWorkload is the session's entry in the list of workloads.
func sessionWorkload() Workload {
	return Workload{Name: "session", Run: runSession, Before: func(*Runner) error { return dropCaches() }, Metrics: []Metric{
		{Key: "session-untar", Title: "one mount, cold: untar small files in 40 directories + sync", Unit: "s"},
		{Key: "session-rmrf", Title: "one mount, cold: then rm -rf of one-byte lower files + sync", Unit: "s"},
		{Key: "session-copyup", Title: "one mount, cold: then append 1 byte to the big lower file, uncached + sync", Unit: "s", TargetRatio: 1.0},
		{Key: "session-walk", Title: "one mount, cold: then find -printf of the walk tree", Unit: "s"},
	}}
}

// prepareSession writes the session's tarball and its lower subtree (and
// the native copies of the subtree, one per repetition).
func (ws *Workspace) prepareSession(cfg *Config) error {
	if !slices.Contains(cfg.Workloads, "session") {
		return nil
	}
	if err := writeSessionTarball(filepath.Join(ws.Root, sessionTarball), cfg.SessionFiles); err != nil {
		return err
	}
	w := newWriter(ws)
	for f := 0; f < cfg.SessionFiles; f++ {
		rel := fmt.Sprintf("d%02d/f%05d", f%50, f)
		w.file(filepath.Join(ws.Lowers[1], coldDir, rel), []byte{'x'})
		for r := 0; r < cfg.Reps; r++ {
			w.file(filepath.Join(ws.Native, fmt.Sprintf("%s-%d", coldDir, r), rel), []byte{'x'})
		}
	}
	return w.wait()
}

// writeSessionTarball writes n files of 1 to 4,000 bytes, in 40
// directories, to path.
func writeSessionTarball(path string, n int) error {
	return writeTar(path, func(tw *tar.Writer) error {
		rng := rand.New(rand.NewPCG(5, 6))
		data := tarData(4000)
		for d := 0; d < 40; d++ {
			if err := tw.WriteHeader(tarDir(fmt.Sprintf("s%02d/", d))); err != nil {
				return err
			}
		}
		for i := 0; i < n; i++ {
			if err := tarFile(tw, fmt.Sprintf("s%02d/f%05d", i%40, i), data[:1+rng.IntN(len(data))]); err != nil {
				return err
			}
		}
		return nil
	})
}

// runSession runs the four steps of the session on one fresh mount.
func runSession(r *Runner, s System, rep int) (map[string]float64, error) {
	out := map[string]float64{}
	lower := filepath.Join(r.ws.Lowers[2], seqFile)
	size := r.cfg.SeqSize
	var upper string
	isNative, appended := false, false
	err := withMount(r, s, "session", false, func(m *Mount, u Union) error {
		isNative = m.Dir == u.Native
		if !isNative {
			upper = filepath.Join(u.Upper, seqFile)
		}
		// 1. untar + sync; the tarball itself is read once, so only the
		// union's work is timed.
		dir := filepath.Join(m.Dir, fmt.Sprintf("t-session-%d", rep))
		if err := asWorkloadUserHere(func() error { return os.Mkdir(dir, 0o755) }); err != nil {
			return err
		}
		tarball := filepath.Join(r.ws.Root, sessionTarball)
		if err := dropCaches(); err != nil {
			return err
		}
		if err := readAll(tarball, -1); err != nil {
			return err
		}
		d, err := timed(thenSync(command("tar", "-xf", tarball, "-C", dir)))
		if err != nil {
			return err
		}
		out["session-untar"] = d.Seconds()

		// 2. rm -rf of the untouched lower subtree + sync.
		cold := filepath.Join(m.Dir, coldDir)
		if isNative {
			cold = filepath.Join(m.Dir, fmt.Sprintf("%s-%d", coldDir, rep))
		}
		if d, err = timed(thenSync(command("rm", "-rf", cold))); err != nil {
			return err
		}
		if _, err := os.Lstat(cold); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s still exists after rm -rf (%v)", cold, err)
		}
		out["session-rmrf"] = d.Seconds()

		// 3. the copy-up of an uncached lower file + sync.
		if err := evict(lower); err != nil {
			return err
		}
		if d, err = timed(func() error {
			err := asWorkloadUserHere(func() error { return appendByte(filepath.Join(m.Dir, seqFile)) })
			appended = err == nil
			unix.Sync()
			return err
		}); err != nil {
			return err
		}
		out["session-copyup"] = d.Seconds()

		// 4. a cold stat walk in the mount that did all that.
		if err := dropCaches(); err != nil {
			return err
		}
		if d, err = timed(command("find", filepath.Join(m.Dir, walkDir), "-printf", "%i %s %m\n")); err != nil {
			return err
		}
		out["session-walk"] = d.Seconds()
		if rep == 0 {
			return checkCount(dir, 40+r.cfg.SessionFiles)
		}
		return nil
	})
	if appended {
		err = errors.Join(err, checkAppended(lower, upper, size, isNative))
	}
	return out, err
}

// evict writes back and drops the page cache of the file at path, so that
// the next read of it comes from the disk.
func evict(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fdatasync(fd); err != nil {
		return err
	}
	return unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
}

// appendByte appends a newline to the file at path: open, write, close.
func appendByte(path string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if _, err := unix.Write(fd, []byte{'\n'}); err != nil {
		unix.Close(fd)
		return err
	}
	return unix.Close(fd)
}

// checkAppended checks, after one byte was appended to the lower file of
// size bytes through a union, that its upper copy (upper) has the byte,
// removes that copy, and that the lower file did not change. The native
// system appended to the lower file itself (a hard link of it), which is
// truncated back.
func checkAppended(lower, upper string, size int64, isNative bool) error {
	var err error
	if isNative {
		err = os.Truncate(lower, size)
	} else {
		if fi, serr := os.Stat(upper); serr != nil || fi.Size() != size+1 {
			err = fmt.Errorf("after the append the upper copy is not %d bytes: %v", size+1, serr)
		}
		removeWritten(upper)
	}
	if fi, serr := os.Stat(lower); serr != nil || fi.Size() != size {
		err = errors.Join(err, fmt.Errorf("THE LOWER LAYER CHANGED: %s is no longer %d bytes", lower, size))
		os.Truncate(lower, size)
	}
	unix.Sync()
	return err
}
