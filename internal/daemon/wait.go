package daemon

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A clean unmount does not always end the daemon at once. Every mount
// namespace created while the union was mounted holds a copy of the mount
// (with private propagation an unmount here does not reach it): a
// container being set up, until it detaches its old root; another user's
// rootless namespace holder, for as long as it lives. The kernel keeps
// the FUSE connection while any copy is left, so the daemon goes on
// serving what nobody here can reach. WaitUnmounted waits a moment for
// the daemon to end by itself, then tells it to stop (SIGTERM): a daemon
// whose union is no longer mounted in its own namespace exits on a
// signal (Serve), which closes the connection under the stale copies.

// staleGrace is how long WaitUnmounted lets a daemon end by itself before
// telling it to stop.
const staleGrace = time.Second

// WaitExit waits until the daemon recorded in r has exited, at most
// timeout, and removes its pid file if the daemon left it behind. Read r
// before unmounting: the daemon removes its pid file as it exits.
func WaitExit(r Record, timeout time.Duration) error {
	p := openProcess(r)
	defer p.close()
	if !p.wait(timeout) {
		return fmt.Errorf("daemon %d of %s still running after %v", r.PID, r.Merged, timeout)
	}
	r.removeStalePid()
	return nil
}

// WaitUnmounted is WaitExit after a clean (not lazy) unmount of the union
// from the daemon's mount namespace: a daemon that still runs after a
// moment serves only copies of the mount in other namespaces, and is told
// to stop (see above).
func WaitUnmounted(r Record, timeout time.Duration) error {
	p := openProcess(r)
	defer p.close()
	if !p.wait(min(staleGrace, timeout)) {
		p.signal(syscall.SIGTERM)
		if !p.wait(max(timeout-staleGrace, 0)) {
			return fmt.Errorf("daemon %d of %s still running %v after its unmount", r.PID, r.Merged, timeout)
		}
	}
	r.removeStalePid()
	return nil
}

// WaitProcessExit waits until process pid, started at start (as
// StartTime gives it), has exited, at most timeout, and reports whether it
// has. A zombie has exited.
func WaitProcessExit(pid int, start uint64, timeout time.Duration) bool {
	p := openProcess(Record{PID: pid, Start: start})
	defer p.close()
	return p.wait(timeout)
}

// removeStalePid removes the pid file of r if its daemon, which has
// exited, left it behind.
func (r Record) removeStalePid() {
	if cur, err := ReadPid(r.Merged); err == nil && cur == r {
		os.Remove(pidFile(r.Merged))
	}
}

// process is a daemon being waited for: through a pidfd where the kernel
// has them (an exit is then an event, and a signal cannot reach a process
// that reused the PID), by polling its record otherwise. fd is -1 when
// polling; gone is set when the daemon had exited already.
type process struct {
	r    Record
	fd   int
	gone bool
}

// openProcess returns the daemon of r to wait for.
func openProcess(r Record) *process {
	p := &process{r: r, fd: -1}
	fd, err := unix.PidfdOpen(r.PID, 0) // always close-on-exec
	switch {
	case errors.Is(err, unix.ESRCH):
		p.gone = true
		return p
	case err != nil:
		return p // older kernel: poll
	}
	p.fd = fd
	if !r.Alive() {
		// Exited, or the PID names another process now.
		p.gone = true
	}
	return p
}

func (p *process) close() {
	if p.fd >= 0 {
		unix.Close(p.fd)
	}
}

// wait reports whether the daemon exits within timeout.
func (p *process) wait(timeout time.Duration) bool {
	if p.gone {
		return true
	}
	deadline := time.Now().Add(timeout)
	if p.fd >= 0 {
		for {
			// Rounded up: poll counts whole milliseconds, and a timeout
			// cut short would end the wait before the deadline.
			left := time.Until(deadline)
			ms := int((left + time.Millisecond - 1) / time.Millisecond)
			n, err := unix.Poll([]unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}, max(ms, 0))
			switch {
			case n > 0:
				p.gone = true
				return true
			case (err == nil || errors.Is(err, unix.EINTR)) && ms > 0 && time.Now().Before(deadline):
				continue
			case err != nil && !errors.Is(err, unix.EINTR):
				// Not expected of a pidfd: poll the record instead.
				p.close()
				p.fd = -1
				return p.wait(time.Until(deadline))
			}
			return false
		}
	}
	for p.r.Alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.gone = true
	return true
}

// signal sends sig to the daemon if it still runs.
func (p *process) signal(sig syscall.Signal) {
	switch {
	case p.gone:
	case p.fd >= 0:
		unix.PidfdSendSignal(p.fd, sig, nil, 0)
	case p.r.Alive():
		syscall.Kill(p.r.PID, sig)
	}
}
