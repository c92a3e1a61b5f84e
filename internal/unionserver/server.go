package unionserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/unionfuse/unionfuse/fs"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/partial"
	"golang.org/x/sys/unix"
)

// IdleExit is how long a server goes on running while it serves no union
// and no client is connected, before it exits.
const IdleExit = time.Second

// errStopping refuses a request that arrives once the server has begun
// to stop: the client is sent no answer, so it starts another server.
var errStopping = errors.New("the union server is stopping")

// server holds the unions one server process serves.
type server struct {
	root   string // unions are mounted only below it
	logger *log.Logger
	// memory sizes the runtime's soft memory limit to the node bounds
	// of the unions served, as the per-mount daemon's is to its one.
	memory *daemon.MemoryLimiter

	mu     sync.Mutex
	unions map[string]*union // by mountpoint, while mounted there
	// live counts the unions still served, also those no longer at
	// their mountpoint that a copy of the mount (a container's root)
	// keeps: the server must not exit under them.
	live     int
	clients  int       // connections open
	lastBusy time.Time // when the last union or client went away
	stopping bool      // no more requests are taken
}

// union is one union the server serves.
type union struct {
	mounted *fs.Mounted
	dev     uint64 // the mountpoint's device once mounted: still ours while it stays
}

// newServer returns a server for the unions under root.
func newServer(root string, logger *log.Logger) *server {
	return &server{root: root, logger: logger, memory: daemon.NewMemoryLimiter(), unions: map[string]*union{}, lastBusy: time.Now()}
}

// accept serves the connections l accepts until l is closed.
func (s *server) accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go s.serveConn(c)
	}
}

// serveConn answers the requests of one client in turn until it hangs
// up, sends something that is not a request, or the server stops.
func (s *server) serveConn(c net.Conn) {
	defer c.Close()
	if err := checkPeer(c); err != nil {
		s.logger.Print(err)
		return
	}
	s.mu.Lock()
	s.clients++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.clients--
		s.lastBusy = time.Now()
		s.mu.Unlock()
	}()
	dec, enc := json.NewDecoder(c), json.NewEncoder(c)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			return
		}
		var resp response
		if err := s.handle(req); errors.Is(err, errStopping) {
			return
		} else if err != nil {
			resp.Error = oneLine(err.Error())
		}
		if err := enc.Encode(resp); err != nil {
			return
		}
	}
}

// checkPeer refuses a peer that is not this process's user: a client
// that may ask for mounts holds this user's privileges over them, and a
// server that answers mount requests is trusted with them.
func checkPeer(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return errors.New("union server: not a unix connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if credErr != nil {
		return fmt.Errorf("union server: peer credentials: %w", credErr)
	}
	if int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("union server: the peer is uid %d, not this user", cred.Uid)
	}
	return nil
}

// handle carries out one request.
func (s *server) handle(req request) error {
	if !s.below(req.Merged) {
		return fmt.Errorf("mountpoint %q is not below the union server's root %s", req.Merged, s.root)
	}
	if req.Op != opMount {
		return fmt.Errorf("unknown request %q", req.Op)
	}
	if err := hidesRunDir(req.Merged); err != nil {
		return err
	}
	return s.mount(req.Merged, req.Config, req.New)
}

// below reports whether merged is a clean absolute path below the root,
// also once the symbolic links of its parent are resolved, and not
// itself a symbolic link (which mount(2) would follow out of the root).
func (s *server) below(merged string) bool {
	if !filepath.IsAbs(merged) || filepath.Clean(merged) != merged || !under(merged, s.root) {
		return false
	}
	root, err := filepath.EvalSymlinks(s.root)
	if err != nil {
		return false
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(merged))
	if err != nil || (parent != root && !under(parent, root)) {
		return false
	}
	var st unix.Stat_t
	return unix.Lstat(merged, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK
}

// hidesRunDir refuses a mountpoint at or above the run directory, where
// the server's socket and lock are: a union there would hide them, and
// the next client would start a second server for the root.
func hidesRunDir(merged string) error {
	if daemon.PidDirWithin(merged) {
		return fmt.Errorf("mountpoint %s would hide the union server's socket in %s", merged, daemon.PidDir())
	}
	return nil
}

// under reports whether the clean absolute path p is strictly below the
// directory root (which may be "/").
func under(p, root string) bool {
	if root == "/" {
		return p != "/"
	}
	return strings.HasPrefix(p, root+"/")
}

// mount serves cfg at merged: only where nothing is mounted when isNew
// is set, else unless this server serves a union there already (see
// request.New).
func (s *server) mount(merged string, cfg fs.Config, isNew bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return errStopping
	}
	if u := s.unions[merged]; u != nil && !isNew {
		if dev, err := deviceOf(merged); err == nil && dev == u.dev {
			return nil
		}
		// Unmounted there while a copy of the mount elsewhere (a
		// container's root) keeps it served: mount a new one.
		delete(s.unions, merged)
	}
	if !isNew {
		if err := clearStale(merged); err != nil {
			return err
		}
	}
	// Without a fetcher (the server has none), a lazily pulled layer's
	// missing data would read as zeros.
	if partial.Any(cfg.Lowers) {
		return fmt.Errorf("a lower layer of %s is pulled lazily and not complete: the union server cannot serve it", merged)
	}
	cfg.Logger = log.New(s.logger.Writer(), filepath.Base(filepath.Dir(merged))+": ", s.logger.Flags())
	cfg.OnIdle = debug.FreeOSMemory
	cfg.Fetchers = nil
	// The server opens nothing in its unions (deviceOf's stat polls
	// nothing): no poll probe, and the client's wait ends sooner.
	cfg.ServerStaysOut = true
	m, err := fs.Mount(merged, cfg)
	if err != nil {
		return err
	}
	dev, err := deviceOf(merged)
	if err != nil {
		m.Unmount()
		return fmt.Errorf("mounted %s: %w", merged, err)
	}
	u := &union{mounted: m, dev: dev}
	s.unions[merged] = u
	s.live++
	uncount := s.memory.Add(cfg, m.HeldNodes)
	s.logger.Printf("mounted %s (memory limit %s)", merged, s.memoryLimit())
	go func() {
		m.Wait()
		uncount()
		s.mu.Lock()
		if s.unions[merged] == u {
			delete(s.unions, merged)
		}
		s.live--
		s.lastBusy = time.Now()
		s.mu.Unlock()
		s.logger.Printf("unmounted %s (memory limit %s)", merged, s.memoryLimit())
	}()
	return nil
}

// memoryLimit is the runtime's soft memory limit, for the log.
func (s *server) memoryLimit() string {
	if s.memory == nil {
		return "GOMEMLIMIT's"
	}
	if l := s.memory.Limit(); l != math.MaxInt64 {
		return fmt.Sprintf("%d MiB", l>>20)
	}
	return "none"
}

// stop takes no more requests and detaches, lazily, every union it
// serves that is still at its mountpoint (their users keep them until
// they leave); a mount there that is not this server's is left alone.
func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	for merged, u := range s.unions {
		if dev, err := deviceOf(merged); err != nil || dev != u.dev {
			continue
		}
		if err := detach(merged); err != nil {
			s.logger.Print(err)
		}
	}
}

// stopIfIdle stops the server when it has served no union and had no
// client for IdleExit, and reports whether it did.
func (s *server) stopIfIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live > 0 || s.clients > 0 || time.Since(s.lastBusy) < IdleExit {
		return false
	}
	s.stopping = true
	return true
}

// serving returns how many unions the server serves.
func (s *server) serving() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

// clearStale makes merged ready for a mount. Whatever is mounted there
// is not this server's (the caller looked), and one server listens for a
// root at a time, so it is a union of a server that died (its root may
// still answer from the kernel's cache while every other request fails
// with ECONNABORTED) or, rarely, of one that stopped listening and waits
// for its users: a client asks for it again only after its own was
// detached. It is detached.
func clearStale(merged string) error {
	mounted, err := isMountpoint(merged)
	if mounted {
		return detach(merged)
	}
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", merged, err)
	}
	return nil
}

// isMountpoint reports whether a filesystem other than its parent's is
// mounted at dir; a dead FUSE mount that says so (ENOTCONN,
// ECONNABORTED) is (true, that error), a missing dir (false, nil).
func isMountpoint(dir string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Stat(dir, &st); errors.Is(err, unix.ENOENT) {
		return false, nil
	} else if errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED) {
		return true, err
	} else if err != nil {
		return false, err
	}
	if err := unix.Stat(filepath.Dir(dir), &parent); err != nil {
		return false, err
	}
	return st.Dev != parent.Dev, nil
}

// Detach unmounts the union at merged, lazily when it is busy (its users
// keep it until they leave); nothing mounted there is no error. Whoever
// serves it notices. A dead union (its server killed) is detached too.
func Detach(merged string) error {
	// Mounts stacked there come off one at a time.
	for range maxStacked {
		mounted, err := isMountpoint(merged)
		if !mounted {
			return err
		}
		if err == nil {
			err = daemon.Unmount(merged, false)
		}
		if err != nil && !errors.Is(err, daemon.ErrNotMounted) {
			if err := detach(merged); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("%s: still mounted after %d unmounts", merged, maxStacked)
}

// maxStacked bounds the mounts Detach takes off one mountpoint.
const maxStacked = 16

// detach unmounts merged lazily.
func detach(merged string) error {
	if err := daemon.Unmount(merged, true); err != nil && !errors.Is(err, daemon.ErrNotMounted) {
		return err
	}
	return nil
}

// deviceOf returns the device of the filesystem at path.
func deviceOf(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Dev, nil
}

// oneLine keeps the first line of msg.
func oneLine(msg string) string {
	first, _, _ := strings.Cut(strings.TrimSpace(msg), "\n")
	return first
}
