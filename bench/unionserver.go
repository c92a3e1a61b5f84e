package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/unionfuse/unionfuse/internal/mountopts"
	"github.com/unionfuse/unionfuse/internal/unionserver"
	"golang.org/x/sys/unix"
)

// sysUnionServer is unionfuse's union server: one process serves every
// union of the run (as the containerd snapshotter's unions are served),
// instead of a daemon per union. Not in the default run: -systems
// ...,unionfuse-server (the many-mounts workload is what it is for).
const sysUnionServer = "unionfuse-server"

// unionServerSystem serves unions through a union server for the runs
// directory of the workspace, started from unionfuse-fuse by the first
// mount. In a rootless run every mount is the command a user types,
// `unionfuse-fuse -o server=DIR,...`, run as the workload user: the
// server then runs as that user and mounts through fusermount3.
type unionServerSystem struct {
	root, log, bin string
	// cred is the user the mount commands run as; nil for root, whose
	// mounts ask the server through the client directly.
	cred *syscall.Credential

	once   sync.Once
	client *unionserver.Client
}

// newUnionServer returns the system for the unions under root (the
// workspace's runs directory), served by bin (unionfuse-fuse), logging to
// log, mounted as the user cred (nil: root).
func newUnionServer(root, bin, log string, cred *syscall.Credential) *unionServerSystem {
	return &unionServerSystem{root: root, bin: bin, log: log, cred: cred}
}

// Name implements System.
func (s *unionServerSystem) Name() string { return sysUnionServer }

// Mount implements System: it asks the server (started when none runs)
// to serve u and waits for the union.
func (s *unionServerSystem) Mount(u Union) (*Mount, error) {
	if s.cred != nil {
		m, err := s.MountFromShell(u)
		if err != nil {
			return nil, err
		}
		m.PID = s.serverPid()
		return m, nil
	}
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
// cannot be read. A user's server keeps its lock file where that user's
// environment and namespaces say (unionserver.SocketPath), so for a
// rootless run it is found among the user's processes instead: the one
// started as `NAME ROOT SOCKET LOGFILE` for this ROOT.
func (s *unionServerSystem) serverPid() int {
	if s.cred != nil {
		return userServerPid(s.cred.Uid, s.root)
	}
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
	opts := "server=" + s.root + "," + layerOptions(u)
	if s.cred != nil {
		opts += ",allow_other" // the harness, root, reads through it
	}
	return fromShell(s.Name(), u, []string{s.bin, "-o", opts, u.Merged}, s.cred, nil)
}

// userServerPid returns the pid of the union server for root run by user
// uid, 0 when none runs.
func userServerPid(uid uint32, root string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range procs {
		var st unix.Stat_t
		if unix.Stat(dir, &st) != nil || st.Uid != uid {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if len(args) == 4 && args[1] == root {
			pid, _ := strconv.Atoi(filepath.Base(dir))
			return pid
		}
	}
	return 0
}
