package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/unionfuse/unionfuse/internal/mountopts"
	"github.com/unionfuse/unionfuse/internal/unionserver"
)

// sysUnionServer is unionfuse's union server: one process serves every
// union of the run (as the containerd snapshotter's unions are served),
// instead of a daemon per union. Not in the default run: -systems
// ...,unionfuse-server (the many-mounts workload is what it is for).
const sysUnionServer = "unionfuse-server"

// unionServerSystem serves unions through a union server for the runs
// directory of the workspace, started from unionfuse-fuse by the first
// mount.
type unionServerSystem struct {
	root, log, bin string

	once   sync.Once
	client *unionserver.Client
}

// newUnionServer returns the system for the unions under root (the
// workspace's runs directory), served by bin (unionfuse-fuse), logging to
// log.
func newUnionServer(root, bin, log string) *unionServerSystem {
	return &unionServerSystem{root: root, bin: bin, log: log}
}

// Name implements System.
func (s *unionServerSystem) Name() string { return sysUnionServer }

// Mount implements System: it asks the server (started when none runs)
// to serve u and waits for the union.
func (s *unionServerSystem) Mount(u Union) (*Mount, error) {
	s.once.Do(func() { s.client = unionserver.NewClient(s.root, s.log, s.bin) })
	opts, err := mountopts.Parse(layerOptions(u))
	if err != nil {
		return nil, err
	}
	cfg := opts.FsConfig()
	cfg.FsName = "unionfuse"
	start := time.Now()
	if err := s.client.Mount(u.Merged, cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", sysUnionServer, err)
	}
	m := &Mount{Dir: u.Merged, PID: s.serverPid()}
	m.unmount = func() error { return unionserver.Detach(u.Merged) }
	remember(m)
	if err := waitReady(filepath.Join(u.Merged, u.Ready), nil, 20*time.Second); err != nil {
		m.Unmount()
		return nil, fmt.Errorf("%s: %w (see %s)", sysUnionServer, err, s.log)
	}
	m.Elapsed = time.Since(start)
	return m, nil
}

// serverPid is the running server's pid from its lock file, 0 when it
// cannot be read.
func (s *unionServerSystem) serverPid() int {
	b, err := os.ReadFile(unionserver.PidFile(s.root))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// MountFromShell implements shellMounter: unionfuse-fuse's fuse-overlayfs
// form with -o server= naming the workspace's runs directory, so the
// command asks the same server the other rows use (started by it when
// none runs), as a user's `unionfuse-fuse -o server=DIR,... MERGED` does.
func (s *unionServerSystem) MountFromShell(u Union) (*Mount, error) {
	argv := []string{s.bin, "-o", "server=" + s.root + "," + layerOptions(u), u.Merged}
	return fromShell(s.Name(), u, argv, nil, nil)
}
