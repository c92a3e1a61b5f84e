package main

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The workspace, made under -dir:
//
//	l/0 l/1 l/2     the three lower layers, l/0 on top
//	  .ready          (l/2) stat through a mount to see it is up
//	  w/gGGG/dDD/fFF  metadata-walk tree: directories in one or all three
//	                  layers, every fifth file shadowed by a copy below it
//	  big/eNNNNN      the large directory, entries spread over the layers,
//	                  every tenth one also shadowed in l/2
//	  del/sSS/fFFF    (l/1) the subtree removed by the delete workload
//	  seq.dat         (l/2) read, and copied up by the append
//	  rand.dat        (l/1) read at random by fio
//	native/         the same tree flattened, the native system's directory;
//	                seq.dat and rand.dat are hard links to the lower files,
//	                del-R is a fresh copy of del/ for repetition R
//	m/NNN           -mount-layers small layers for the mount-time workload
//	small.tar       the tarball of -create-files small files
//	session.tar     the tarball the session workload extracts, and
//	  cold/dDD/fNNNNN (l/1) the subtree it removes (session.go)
//	runs/NNNN/      one per mount: u (a fresh upper), w (work), m (merged)
//	logs/           the FUSE daemons' output
const (
	walkDir    = "w"
	bigDir     = "big"
	delDir     = "del"
	seqFile    = "seq.dat"
	randFile   = "rand.dat"
	readyFile  = ".ready"
	lowerCount = 3
)

// workspaceRoot is the workspace of this run, for the message on interrupt.
var workspaceRoot string

// Workspace is the prepared data of one run.
type Workspace struct {
	// Root is the temporary directory holding everything.
	Root string
	// Lowers are the three lower layers, top first.
	Lowers []string
	// Native is the flattened tree.
	Native string
	// MountLowers are the layers of the large mount, top first.
	MountLowers []string
	// Tarball is the archive the create workload extracts.
	Tarball string

	runs int
}

// newWorkspace makes a temporary directory under dir, which must be on ext4.
func newWorkspace(dir string) (*Workspace, error) {
	if err := checkExt4(dir); err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp(dir, "ufbench-")
	if err != nil {
		return nil, err
	}
	workspaceRoot = root
	ws := &Workspace{Root: root, Native: filepath.Join(root, "native"), Tarball: filepath.Join(root, "small.tar")}
	for i := 0; i < lowerCount; i++ {
		ws.Lowers = append(ws.Lowers, filepath.Join(root, "l", fmt.Sprint(i)))
	}
	for _, d := range append([]string{ws.Native, filepath.Join(root, "runs"), filepath.Join(root, "logs")}, ws.Lowers...) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	return ws, nil
}

// checkExt4 fails unless dir is on ext4 (never tmpfs: the point is a disk).
func checkExt4(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("workspace %s: %w", dir, err)
	}
	if st.Type != unix.EXT4_SUPER_MAGIC {
		return fmt.Errorf("workspace %s is not on ext4 (filesystem magic %#x); give -dir a directory on an ext4 disk", dir, st.Type)
	}
	return nil
}

// Fresh returns a new union over the three lowers with an empty upper,
// work and merged directory, so that no run sees another's writes.
func (ws *Workspace) Fresh(tag string) (Union, error) {
	return ws.fresh(tag, ws.Lowers)
}

// FreshMany is Fresh over the -mount-layers small layers.
func (ws *Workspace) FreshMany(tag string) (Union, error) {
	return ws.fresh(tag, ws.MountLowers)
}

func (ws *Workspace) fresh(tag string, lowers []string) (Union, error) {
	ws.runs++
	d := filepath.Join(ws.Root, "runs", fmt.Sprintf("%04d", ws.runs))
	u := Union{
		Lowers: lowers, Upper: filepath.Join(d, "u"), Work: filepath.Join(d, "w"), Merged: filepath.Join(d, "m"),
		Native: ws.Native, Ready: readyFile, Tag: fmt.Sprintf("%04d-%s", ws.runs, tag),
	}
	for _, p := range []string{d, u.Upper, u.Work, u.Merged} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return u, err
		}
		if workloadCred != nil {
			if err := os.Chown(p, rootlessUID, rootlessGID); err != nil {
				return u, err
			}
		}
	}
	return u, nil
}

// writer writes the files of the layers with a few goroutines (file
// creation on ext4 scales a little with cores), making parent directories
// as needed. Call wait for the first error.
type writer struct {
	ws   *Workspace
	jobs chan fileJob
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
}

type fileJob struct {
	path string
	data []byte
}

func newWriter(ws *Workspace) *writer {
	w := &writer{ws: ws, jobs: make(chan fileJob, 1024)}
	for i := 0; i < 4; i++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for j := range w.jobs {
				if err := writeSmall(j.path, j.data); err != nil {
					w.mu.Lock()
					if w.err == nil {
						w.err = err
					}
					w.mu.Unlock()
				}
			}
		}()
	}
	return w
}

// writeSmall writes a small file, making its directory when missing.
func writeSmall(path string, data []byte) error {
	err := os.WriteFile(path, data, 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
			err = os.WriteFile(path, data, 0o644)
		}
	}
	return err
}

func (w *writer) file(path string, data []byte) {
	w.jobs <- fileJob{path, data}
}

// wait lets the goroutines finish and returns the first error.
func (w *writer) wait() error {
	close(w.jobs)
	w.wg.Wait()
	return w.err
}

// lower writes rel into lower layer i; native also into the flat tree.
func (w *writer) lower(i int, rel string, data []byte, native bool) {
	w.file(filepath.Join(w.ws.Lowers[i], rel), data)
	if native {
		w.file(filepath.Join(w.ws.Native, rel), data)
	}
}

// prepareTrees writes the walk tree, the large directory, the delete
// subtree (and reps native copies of it) and the ready marker.
func (ws *Workspace) prepareTrees(cfg *Config) error {
	w := newWriter(ws)
	w.lower(lowerCount-1, readyFile, nil, true)

	// Metadata walk: WalkDirs directories in groups of 50. Directory d
	// lives in layer d%3, except every fifth, whose files are spread over
	// all three; every fifth file has a shadowed copy one layer below.
	per, extra := cfg.WalkFiles/cfg.WalkDirs, cfg.WalkFiles%cfg.WalkDirs
	for d := 0; d < cfg.WalkDirs; d++ {
		dir := fmt.Sprintf("%s/g%03d/d%02d", walkDir, d/50, d%50)
		n := per
		if d < extra {
			n++
		}
		for f := 0; f < n; f++ {
			layer := d % lowerCount
			if d%5 == 0 {
				layer = (d + f) % lowerCount
			}
			rel := fmt.Sprintf("%s/f%02d", dir, f)
			w.lower(layer, rel, []byte(rel+"\n"), true)
			if f%5 == 0 && layer+1 < lowerCount {
				w.lower(layer+1, rel, []byte(rel+" (shadowed)\n"), false)
			}
		}
	}

	// Large directory: entry e in layer e%3, every tenth also in l/2.
	for e := 0; e < cfg.ReaddirEntries; e++ {
		rel := fmt.Sprintf("%s/e%05d", bigDir, e)
		w.lower(e%lowerCount, rel, nil, true)
		if e%10 == 0 && e%lowerCount != lowerCount-1 {
			w.lower(lowerCount-1, rel, []byte("shadowed\n"), false)
		}
	}

	// Delete subtree: 100 files per subdirectory, in l/1; the native
	// system deletes a fresh copy in every repetition.
	for f := 0; f < cfg.DeleteFiles; f++ {
		rel := fmt.Sprintf("s%03d/f%03d", f/100, f%100)
		w.lower(1, filepath.Join(delDir, rel), []byte(rel+"\n"), false)
		for r := 0; r < cfg.Reps; r++ {
			w.file(filepath.Join(ws.Native, fmt.Sprintf("%s-%d", delDir, r), rel), []byte(rel+"\n"))
		}
	}
	return w.wait()
}

// prepareMountLayers writes the small layers of the large mount: each
// holds x/fNNN, so x is a directory merged from all of them.
func (ws *Workspace) prepareMountLayers(cfg *Config) error {
	w := newWriter(ws)
	ws.MountLowers = nil
	for i := 0; i < cfg.MountLayers; i++ {
		l := filepath.Join(ws.Root, "m", fmt.Sprintf("%03d", i))
		ws.MountLowers = append(ws.MountLowers, l)
		w.file(filepath.Join(l, "x", fmt.Sprintf("f%03d", i)), []byte("x\n"))
	}
	w.file(filepath.Join(ws.MountLowers[len(ws.MountLowers)-1], readyFile), nil)
	return w.wait()
}

// prepareData writes seq.dat (l/2) and rand.dat (l/1), each a
// pseudo-random 1 MiB block varied per MiB, and hard-links them into the
// native tree, so every system reads the same blocks of the same disk.
func (ws *Workspace) prepareData(cfg *Config) error {
	for _, f := range []struct {
		layer int
		name  string
		size  int64
	}{{2, seqFile, cfg.SeqSize}, {1, randFile, cfg.RandSize}} {
		p := filepath.Join(ws.Lowers[f.layer], f.name)
		if err := writePattern(p, f.size); err != nil {
			return err
		}
		if err := os.Link(p, filepath.Join(ws.Native, f.name)); err != nil {
			return err
		}
	}
	return nil
}

// writePattern writes size bytes of incompressible data to path and fsyncs.
func writePattern(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	block := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range block {
		block[i] = byte(rng.Uint32())
	}
	for off := int64(0); off < size; off += int64(len(block)) {
		block[0], block[1], block[2] = byte(off>>20), byte(off>>28), byte(off>>36)
		n := min(int64(len(block)), size-off)
		if _, err := f.Write(block[:n]); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// prepareTarball writes a tarball of cfg.CreateFiles small files (0 to
// 4 KiB, 100 to a directory, owned by root, fixed times), the kind of
// archive an image layer is.
func (ws *Workspace) prepareTarball(cfg *Config) error {
	return writeTar(ws.Tarball, func(tw *tar.Writer) error {
		rng := rand.New(rand.NewPCG(3, 4))
		data := tarData(4096)
		for i := 0; i < cfg.CreateFiles; i++ {
			if i%100 == 0 {
				if err := tw.WriteHeader(tarDir(fmt.Sprintf("p%03d/", i/100))); err != nil {
					return err
				}
			}
			if err := tarFile(tw, fmt.Sprintf("p%03d/f%03d", i/100, i%100), data[:rng.IntN(len(data)+1)]); err != nil {
				return err
			}
		}
		return nil
	})
}

// tarTime is the modification time of everything in the tarballs.
var tarTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// writeTar writes the tarball at path with what add writes into it.
func writeTar(path string, add func(tw *tar.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	if err := add(tw); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// tarData returns n bytes of text to take file contents from.
func tarData(n int) []byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	return data
}

// tarDir is the header of directory name (ending in /), mode 0755.
func tarDir(name string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: tarTime, Format: tar.FormatPAX}
}

// tarFile writes a regular file name holding data, mode 0644.
func tarFile(tw *tar.Writer, name string, data []byte) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: tarTime, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// remove deletes the workspace. Deleting hundreds of thousands of files
// is slow; it happens once, after everything is measured.
func (ws *Workspace) remove() error {
	return os.RemoveAll(ws.Root)
}
