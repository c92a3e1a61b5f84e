package network

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"github.com/unionfuse/unionfuse/internal/daemon"
)

// slirp4netns's fixed network (see the package doc).
var (
	slirpAddr       = netip.MustParsePrefix("10.0.2.100/24")
	slirpGateway    = netip.MustParseAddr("10.0.2.2") // also the host's loopback
	slirpNameserver = netip.MustParseAddr("10.0.2.3")
)

const (
	slirpInterface = "tap0"
	slirpRecord    = "slirp4netns.json"
	slirpReadyWait = 10 * time.Second
	// slirpMTU is tap0's MTU: slirp4netns's cost is per packet, so its
	// throughput grows with the segment size (podman's default too).
	slirpMTU = 65520
)

// Slirp is the rootless driver: a slirp4netns process per container, as
// podman's default rootless network (see the package doc). It needs no
// privilege beyond the container's user namespace (and a /dev/net/tun
// its users may open).
type Slirp struct {
	// StateDir holds the record of the container's slirp4netns process:
	// one directory per container (the runner uses the container's).
	StateDir string
}

var _ Driver = (*Slirp)(nil)

// slirpProc is the record of one slirp4netns process: the process (pid
// and start time, which tells a recycled pid from it) and its monitor.
type slirpProc struct {
	ID    string
	Pid   int
	Start uint64
	Owner Owner
}

// slirpChildren are the slirp4netns processes this process started, by
// container id, to be waited for on Detach; the write end of each one's
// exit pipe (--exit-fd) stays open with them, so that slirp4netns exits
// by itself when this process dies.
var slirpChildren = struct {
	sync.Mutex
	m map[string]*slirpChild
}{m: map[string]*slirpChild{}}

type slirpChild struct {
	cmd  *exec.Cmd
	exit *os.File
}

func (s *Slirp) record() string { return filepath.Join(s.StateDir, slirpRecord) }

// Attach implements Driver: it starts slirp4netns on pid's network
// namespace, waits until it configured tap0, and records its pid.
func (s *Slirp) Attach(id string, pid int) (*Attachment, error) {
	if err := s.Detach(id); err != nil { // a leftover of an earlier start
		return nil, err
	}
	att, err := s.start(id, pid)
	if err != nil {
		return nil, fmt.Errorf("network bridge (slirp4netns): %w", err)
	}
	return att, nil
}

// SlirpUsable reports why slirp4netns cannot attach containers for the
// caller: not installed, or /dev/net/tun (which it opens with the
// caller's identity) closed to the caller. Nil when it can.
func SlirpUsable() error {
	if _, err := exec.LookPath("slirp4netns"); err != nil {
		return errNoSlirp
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("slirp4netns needs /dev/net/tun: %w", errors.Unwrap(err))
	}
	f.Close()
	return nil
}

var errNoSlirp = errors.New("slirp4netns is not installed (Debian package slirp4netns)")

func (s *Slirp) start(id string, pid int) (*Attachment, error) {
	child, err := startSlirp(pid)
	if err != nil {
		return nil, err
	}
	start, err := daemon.StartTime(child.cmd.Process.Pid)
	if err == nil {
		rec := slirpProc{ID: id, Pid: child.cmd.Process.Pid, Start: start, Owner: self()}
		b, _ := json.Marshal(rec)
		err = atomicfile.WriteFile(s.record(), b, 0o644)
	}
	if err != nil {
		child.stop()
		return nil, err
	}
	slirpChildren.Lock()
	slirpChildren.m[id] = child
	slirpChildren.Unlock()
	return &Attachment{
		Network:    "bridge",
		IPAddress:  slirpAddr,
		Gateway:    slirpGateway,
		Interface:  slirpInterface,
		Nameserver: slirpNameserver,
		SlirpPid:   child.cmd.Process.Pid,
	}, nil
}

// startSlirp starts slirp4netns on the network namespace of pid and
// waits until it has configured tap0 there. It ends when the returned
// child's exit pipe is closed, which happens when this process ends.
func startSlirp(pid int) (*slirpChild, error) {
	exitR, exitW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer exitR.Close()
	cmd, err := launchSlirp(pid, exitR, nil)
	if err != nil {
		exitW.Close()
		return nil, err
	}
	return &slirpChild{cmd: cmd, exit: exitW}, nil
}

// launchSlirp starts slirp4netns on the network namespace of pid, in this
// process's network namespace (its way out), and waits until it has
// configured tap0. It ends once every write end of exitR's pipe is
// closed (--exit-fd). Its output goes to log when not nil (for one that
// outlives this process), else to a buffer whose last lines an error
// quotes.
func launchSlirp(pid int, exitR, log *os.File) (*exec.Cmd, error) {
	bin, err := exec.LookPath("slirp4netns")
	if err != nil {
		return nil, errNoSlirp
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer readyR.Close()
	defer readyW.Close()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--configure", "--mtu="+strconv.Itoa(slirpMTU), "--ready-fd=3", "--exit-fd=4",
		strconv.Itoa(pid), slirpInterface)
	cmd.ExtraFiles = []*os.File{readyW, exitR}
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if log != nil {
		cmd.Stdout, cmd.Stderr = log, log
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	readyW.Close()
	readyR.SetReadDeadline(time.Now().Add(slirpReadyWait))
	if n, _ := readyR.Read(make([]byte, 1)); n != 1 {
		cmd.Process.Kill()
		cmd.Wait()
		why := "slirp4netns did not get ready"
		// Its last lines say why (and then "child failed(1)").
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if len(lines) > 3 {
			lines = lines[len(lines)-3:]
		}
		if msg := strings.Join(lines, "; "); msg != "" {
			why += ": " + msg
		}
		if log != nil {
			why += " (its output is in " + log.Name() + ")"
		}
		return nil, errors.New(why)
	}
	return cmd, nil
}

// stop ends the slirp4netns process and waits for it.
func (c *slirpChild) stop() {
	c.exit.Close()
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// Detach implements Driver: it kills container id's slirp4netns process
// (by its recorded pid, when it is still that process) and deletes the
// record.
func (s *Slirp) Detach(id string) error {
	slirpChildren.Lock()
	child := slirpChildren.m[id]
	delete(slirpChildren.m, id)
	slirpChildren.Unlock()
	if rec, err := s.read(); err == nil {
		if (Owner{Pid: rec.Pid, Start: rec.Start}).alive() {
			syscall.Kill(rec.Pid, syscall.SIGKILL)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("network bridge (slirp4netns): %w", err)
	}
	if child != nil {
		child.stop()
	}
	if err := os.Remove(s.record()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("network bridge (slirp4netns): %w", err)
	}
	return nil
}

// Cleanup implements Driver: it kills the recorded slirp4netns process
// when its monitor is dead.
func (s *Slirp) Cleanup() error {
	rec, err := s.read()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if rec.Owner.alive() {
		return nil
	}
	return s.Detach(rec.ID)
}

// read reads the record.
func (s *Slirp) read() (slirpProc, error) {
	var rec slirpProc
	b, err := os.ReadFile(s.record())
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("%s: %w", s.record(), err)
	}
	return rec, nil
}
