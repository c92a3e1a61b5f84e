package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/unionfuse/unionfuse/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// Mounted is a live union mount served by this process.
type Mounted struct {
	server    *fuse.Server
	ov        *overlay
	merged    string
	closeOnce sync.Once
}

// Mount validates cfg (see Config.Validate), opens the layers, prepares the
// work directory and mounts the union at merged. It returns once the union
// is visible at merged, so a stat right after it sees the files.
func Mount(merged string, cfg Config) (*Mounted, error) {
	if err := cfg.Validate(merged); err != nil {
		return nil, err
	}
	ov, err := newOverlay(cfg)
	if err != nil {
		return nil, err
	}
	root, rootIno, err := ov.rootNode()
	if err != nil {
		ov.close()
		return nil, err
	}
	opts := ov.mountOptions()
	ov.tree = newTree(root, gofs.StableAttr{Ino: rootIno}, ov.nodeForgotten)
	// Directories are served without OPENDIR (dirserver.go).
	raw := newBridge(ov, cacheTimeout)
	server, err := procs.newServer(newDirServer(raw, ov.tree.node), merged, &opts)
	if err != nil {
		ov.close()
		return nil, fmt.Errorf("mount %s: %w", merged, err)
	}
	// Started before the first request, whose lookups it counts.
	ov.pruner.start(ov.tree, cfg.OnIdle)
	go server.Serve()
	// NewServer returned after the mount and its INIT; WaitMount adds
	// go-fuse's poll probe, which a server that stays out can skip.
	if !cfg.ServerStaysOut {
		if err := server.WaitMount(); err != nil {
			server.Unmount()
			ov.close()
			return nil, fmt.Errorf("mount %s: %w", merged, err)
		}
	}
	return &Mounted{server: server, ov: ov, merged: merged}, nil
}

// HeldNodes returns how many nodes of the union the kernel holds now. It
// is counted only where the nodes are bounded (Config.NodeBound above 0),
// and is 0 otherwise; the bound itself where the kernel cannot be asked
// to forget nodes (before Linux 6.16), as the count is not kept there.
func (m *Mounted) HeldNodes() int { return m.ov.pruner.held() }

// Wait blocks until the union is unmounted (by Unmount, umount(8) or
// fusermount3 -u), then releases the layers. It may be called from several
// goroutines, and together with Unmount.
func (m *Mounted) Wait() {
	m.server.Wait()
	m.closeOnce.Do(m.ov.close)
}

// Unmount detaches the union and waits until the server has stopped.
func (m *Mounted) Unmount() error {
	if err := m.server.Unmount(); err != nil {
		return fmt.Errorf("unmount %s: %w", m.merged, err)
	}
	m.Wait()
	return nil
}

// newOverlay opens the layers and prepares the work directory.
func newOverlay(cfg Config) (*overlay, error) {
	ov := &overlay{
		cfg:         cfg,
		xattr:       ovlfmt.For(cfg.UserXattr),
		privileged:  os.Geteuid() == 0,
		euid:        os.Geteuid(),
		egid:        os.Getegid(),
		log:         cfg.Logger,
		copiedUp:    make(map[devIno]uint64),
		devIndex:    make(map[uint64]uint64),
		tmpfiles:    make(map[uint64]*handle),
		gens:        make(map[uint64]generation),
		openHandles: make(map[nodeKey]map[*handle]struct{}),
		lowerBacked: make(map[nodeKey]bool),
		keptMtimes:  make(map[nodeKey]unix.Timespec),
		superseded:  make(map[nodeKey]bool),
		pruner:      newPruner(cfg.NodeBound(), cfg.IdleTrimAfter),
	}
	ov.initUserNS = InInitialUserNS()
	// Passthrough needs CAP_SYS_ADMIN in the initial user namespace; the
	// kernel refuses it together with the writeback cache.
	ov.passthrough = ov.privileged && ov.initUserNS && !cfg.NoPassthrough && cfg.Writeback != WritebackOn
	ov.writeback = ov.useWriteback()
	ov.redirect = ov.redirectMode()
	ov.metacopy = cfg.Metacopy
	old := unix.Umask(0)
	unix.Umask(old)
	ov.umask = uint32(old)

	dirs := cfg.Lowers
	if !cfg.ReadOnly() {
		dirs = append([]string{cfg.Upper}, cfg.Lowers...)
	}
	for _, d := range dirs {
		l, err := openLayer(d)
		if err != nil {
			ov.close()
			return nil, err
		}
		l.lower = len(ov.layers) > 0 || cfg.ReadOnly()
		if _, ok := ov.devIndex[l.dev]; !ok {
			ov.devIndex[l.dev] = uint64(len(ov.devIndex))
		}
		ov.rootView.layers = append(ov.rootView.layers, len(ov.layers))
		ov.layers = append(ov.layers, l)
	}
	ov.bottom = len(ov.layers) - 1
	if err := ov.openFetchers(); err != nil {
		ov.close()
		return nil, err
	}
	if err := ov.openDataLayers(cfg.DataLowers); err != nil {
		ov.close()
		return nil, err
	}
	ov.indexLayer = -1
	if !cfg.ReadOnly() {
		ov.upper = ov.layers[0]
		work, err := prepareWork(cfg.Work, ov.privileged)
		if err != nil {
			ov.close()
			return nil, err
		}
		ov.work = work
		if cfg.Index {
			if err := ov.setupIndex(cfg.Work); err != nil {
				ov.close()
				return nil, err
			}
		}
	}
	for li := range ov.layers {
		ov.oneLayer = append(ov.oneLayer, &entry{layers: []int{li}})
	}
	return ov, nil
}

// prepareWork creates or empties WORK/work, the kernel's own layout, where
// objects are built before they are renamed into upper.
func prepareWork(workDir string, privileged bool) (*layer, error) {
	dir := filepath.Join(workDir, "work")
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("work directory %s holds leftovers that cannot be removed: %w", dir, err)
	}
	mode := uint32(0o700)
	if privileged {
		mode = 0 // as the kernel makes it: no one else looks inside
	}
	if err := unix.Mkdir(dir, mode); err != nil {
		return nil, fmt.Errorf("create work directory %s: %w", dir, err)
	}
	return openLayer(dir)
}

// rootNode builds the root of the merged view: every layer contributes.
func (ov *overlay) rootNode() (*node, uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(ov.layers[0].fd, &st); err != nil {
		return nil, 0, err
	}
	ino := ov.inoOf(&st)
	root := &node{ov: ov}
	root.setState(ov.rootView.layers, nil)
	return root, ino, nil
}

// cacheTimeout is how long the kernel may keep entries, attributes and
// absent names: lower layers never change under a mount and every change
// to upper goes through this server, which tells the kernel.
const cacheTimeout = time.Hour

func (ov *overlay) mountOptions() fuse.MountOptions {
	name := ov.cfg.FsName
	if name == "" {
		name = "unionfuse"
	}
	opts := []string{"default_permissions"}
	if ov.cfg.ReadOnly() {
		opts = append(opts, "ro")
	}
	opts = append(opts, ov.cfg.MountOptions...)
	caps := uint64(fuse.CAP_READDIRPLUS_AUTO | fuse.CAP_ATOMIC_O_TRUNC | fuse.CAP_HANDLE_KILLPRIV_V2)
	if ov.writeback {
		caps |= fuse.CAP_WRITEBACK_CACHE
	}
	// Every goroutine that reads requests holds a buffer of MaxWrite
	// bytes, which stays resident once a large write has filled it, in
	// every union (a union server holds one per union and reader).
	// Through the server (no passthrough, writeback cache), 1 GiB + fsync
	// ran at medians of 670 MB/s with 1 MiB, 872 with 256 KiB and 752
	// with 128 KiB as root, and 631, 866 and 771 without root; 30
	// rootless unions of one server, each written 8 MiB, held 99, 44 and
	// 26 MB (docs/benchmarks.md, "Request buffers"). With passthrough
	// (Linux 6.9 and later) the data does not come here at all.
	maxWrite := 256 << 10
	if ov.passthrough && kernelAtLeast(6, 9) {
		maxWrite = 128 << 10
	}
	return fuse.MountOptions{
		FsName:      name,
		Name:        "unionfuse",
		Options:     opts,
		AllowOther:  ov.privileged || ov.cfg.AllowOther,
		DirectMount: ov.privileged,
		Debug:       ov.cfg.Debug,
		Logger:      ov.log,
		MaxWrite:    maxWrite,
		// Let the kernel fall back to plain READDIR when nobody stats
		// the entries (find, ls without -l): no lookup per entry then.
		// O_TRUNC arrives with OPEN instead of as a separate SETATTR: a
		// copy-up for it can skip the data. HANDLE_KILLPRIV_V2: this
		// server clears set-id bits and capabilities when an
		// unprivileged user writes, truncates or chowns (killpriv.go),
		// so the kernel stops asking for security.capability before
		// every write. The writeback cache: see writeback.go.
		ExtraCapabilities: caps,
	}
}

// InInitialUserNS reports whether this process runs in the initial user
// namespace, where uid_map maps every id to itself.
func InInitialUserNS() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295"
}

// close releases the layer descriptors.
func (ov *overlay) close() {
	ov.pruner.stop()
	for _, l := range ov.layers {
		l.close()
	}
	ov.layers = nil
	if ov.work != nil {
		ov.work.close()
		ov.work = nil
	}
}
