package unionserver

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/reexec"
	"golang.org/x/sys/unix"
)

// errAlreadyServed says another server holds the root's lock.
var errAlreadyServed = errors.New("another union server serves this root")

// SocketPath is the socket of the server for root: in the run directory
// of this user (where the daemons' pid files are), named by a hash of
// root, as a root's path may be longer than a socket's name can be, and
// of this process's mount and user namespaces unless they are init's: a
// server mounts in its own, with its own rights, so a client in others (a
// rootless podman's, say, beside the user's shell) must have a server of
// its own, or its unions would be mounted where it cannot see them. (In
// init's namespaces the name is the root's alone, as before namespaces
// counted: a snapshotter restarted on a new version finds the server of
// its running containers.)
func SocketPath(root string) string {
	key := root
	mnt, user := namespace("self", "mnt"), namespace("self", "user")
	if mnt != namespace("1", "mnt") || user != namespace("1", "user") {
		key = mnt + "\x00" + user + "\x00" + root
	}
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(daemon.PidDir(), "unions-"+hex.EncodeToString(sum[:8])+".sock")
}

// namespace names the namespace of kind (mnt, user) of process pid
// ("self" for this one), as "mnt:[INODE]", or "?" when it cannot be read
// (init's, by a user without root).
func namespace(pid, kind string) string {
	ns, err := os.Readlink("/proc/" + pid + "/ns/" + kind)
	if err != nil {
		return "?"
	}
	return ns
}

// PidFile is the lock file of the server for root, which holds the pid
// of the server that listens. A server that stops removes it; one that
// was killed leaves it, unlocked, naming a pid that is gone.
func PidFile(root string) string { return SocketPath(root) + ".lock" }

func init() { reexec.Register(reexec.UnionServer, runServer) }

// runServer is the main function of the union-server role, started by a
// Client as `NAME ROOT SOCKET LOGFILE` with the readiness pipe on
// daemon.ReadyFD:
// it listens, reports "ok" (or "error: ..."), and serves until it has
// been idle for IdleExit or a stop signal has come and its unions have
// been left by their last users.
func runServer() int {
	report := daemon.Reporter()
	if len(os.Args) != 4 {
		report("error: union server: wants ROOT SOCKET LOGFILE")
		return 2
	}
	root, sock, logFile := os.Args[1], os.Args[2], os.Args[3]
	logger, closer, err := daemon.OpenLog(logFile)
	if err != nil {
		report("error: " + err.Error())
		return 1
	}
	defer closer.Close()
	l, release, err := listen(sock)
	if errors.Is(err, errAlreadyServed) {
		report("ok")
		return 0
	}
	if err != nil {
		logger.Print(err)
		report("error: " + oneLine(err.Error()))
		return 1
	}
	stop := make(chan os.Signal, 4)
	signal.Notify(stop, daemon.StopSignals()...)
	s := newServer(root, logger)
	go s.accept(l)
	logger.Printf("union server %d: serving unions under %s on %s", os.Getpid(), root, sock)
	report("ok")

	tick := time.NewTicker(IdleExit / 4)
	defer tick.Stop()
	for {
		select {
		case sig := <-stop:
			// Take no more requests and detach the unions, then stop
			// listening: a client that comes now starts a new server,
			// which serves the root while this one waits for the last
			// users of the unions it detached.
			s.stop()
			release()
			logger.Printf("%v: stopping; waiting for the users of %d unions", sig, s.serving())
			for s.serving() > 0 {
				<-tick.C
			}
			logger.Printf("union server %d: stopped", os.Getpid())
			return 0
		case <-tick.C:
			if s.stopIfIdle() {
				release()
				logger.Printf("union server %d: idle, exiting", os.Getpid())
				return 0
			}
		}
	}
}

// listen takes the lock of sock (sock.lock, PidFile), replaces a stale socket and
// listens on it, readable by this user only. release closes the
// listener, removes the socket and drops the lock, in that order, so the
// next server can take over at once. It returns errAlreadyServed when
// another server holds the lock.
func listen(sock string) (l net.Listener, release func(), err error) {
	if err := privateDir(filepath.Dir(sock)); err != nil {
		return nil, nil, err
	}
	lock, err := lockFile(sock + ".lock")
	if err != nil {
		return nil, nil, err
	}
	// The lock file names the server that holds it, for operators and
	// tests (see PidFile).
	if err := lock.Truncate(0); err == nil {
		lock.WriteAt([]byte(fmt.Sprintf("%d\n", os.Getpid())), 0)
	}
	if err := os.Remove(sock); err != nil && !os.IsNotExist(err) {
		lock.Close()
		return nil, nil, fmt.Errorf("union server: %w", err)
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("union server: %w", err)
	}
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(sock, 0o600); err != nil {
		ul.Close()
		lock.Close()
		return nil, nil, fmt.Errorf("union server: %w", err)
	}
	released := false
	return ul, func() {
		if released {
			return
		}
		released = true
		ul.Close()
		os.Remove(sock)
		// Removed while locked: a server that opened it meanwhile finds
		// its lock on a file no longer at the path (lockFile) and
		// starts over.
		os.Remove(lock.Name())
		lock.Close()
	}, nil
}

// privateDir makes dir (the run directory) if need be and checks that it
// is this user's and that no one else may write in it: a socket or lock
// file planted there by another user (a /tmp fallback) would be trusted.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("union server: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("union server: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0 {
		return fmt.Errorf("union server: %s is not a directory of this user that only it may write in", dir)
	}
	return nil
}

// lockFile creates and locks path, or returns errAlreadyServed when
// another server holds it. The lock counts only if path still names the
// locked file: a server that stops removes its lock file.
func lockFile(path string) (*os.File, error) {
	for {
		lock, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("union server: %w", err)
		}
		if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
			lock.Close()
			return nil, errAlreadyServed
		} else if err != nil {
			lock.Close()
			return nil, fmt.Errorf("union server: lock %s: %w", path, err)
		}
		var held, named unix.Stat_t
		if unix.Fstat(int(lock.Fd()), &held) == nil && unix.Stat(path, &named) == nil &&
			held.Dev == named.Dev && held.Ino == named.Ino {
			return lock, nil
		}
		lock.Close()
	}
}
