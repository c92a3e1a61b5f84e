package network

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/reexec"
	"github.com/unionfuse/unionfuse/internal/usernsref"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Namespace is the network namespace that one rootless user's containers
// on user-defined networks share (see the package doc): the bridges, the
// veths' host ends and the nftables rules of those networks live in it,
// and one slirp4netns gives it a way out. It belongs to the user's
// rootless user namespace, whose root the runner's commands are.
type Namespace struct {
	// RunDir holds the holder's record, the lock it ends under and its
	// log.
	RunDir string
	// StateDir holds the networks' lease files: the holder ends once no
	// live process holds a lease in any of them.
	StateDir string
}

const (
	nsRecord    = "netns.json"
	nsLock      = "netns.lock"
	nsLog       = "netns.log"
	nsReadyWait = 15 * time.Second
	// nsIdleCheck is how often the holder looks for leases; it ends at
	// the second look in a row that finds none.
	nsIdleCheck = 2 * time.Second
)

func init() { reexec.Register(reexec.NetNSHolder, runNetNSHolder) }

// do runs fn on a thread inside the namespace. With start, the namespace
// is made when it is not there, and fn runs under the lock under which
// the holder decides to end, so the holder cannot end before fn's lease
// is written. Without start, when there is no namespace, fn runs in a new
// empty one: nothing of the networks is there to find or undo, and the
// caller's own namespace (the host's) is never touched. A nil ns runs fn
// where the caller is (the root bridge).
func (ns *Namespace) do(start bool, fn func() error) error {
	if ns == nil {
		return fn()
	}
	var h netns.NsHandle
	var err error
	if start {
		unlock, err := ns.lock()
		if err != nil {
			return err
		}
		defer unlock()
		h, err = ns.ensure()
		if err != nil {
			return err
		}
	} else if h, err = ns.open(); err != nil {
		return err
	}
	if h.IsOpen() {
		defer h.Close()
	}
	return onThreadIn(h, fn)
}

// lock takes the namespace's lock, made when missing; the holder takes
// it to end.
func (ns *Namespace) lock() (unlock func(), err error) {
	if err := os.MkdirAll(ns.RunDir, 0o700); err != nil {
		return nil, fmt.Errorf("rootless network namespace: %w", err)
	}
	return ns.lockFile(os.O_CREATE)
}

// lockFile takes the lock, opened with flags besides read-write: the
// holder, which takes it without O_CREATE, makes nothing again in a run
// directory removed under it.
func (ns *Namespace) lockFile(flags int) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(ns.RunDir, nsLock), flags|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("rootless network namespace: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("rootless network namespace: lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// nsRecordData is the record: the holder and its slirp4netns.
type nsRecordData struct {
	Holder Owner
	Slirp  Owner
}

// record reads the record; a missing one is the zero record.
func (ns *Namespace) record() (nsRecordData, error) {
	var r nsRecordData
	b, err := os.ReadFile(filepath.Join(ns.RunDir, nsRecord))
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &r)
	}
	return r, err
}

// Holder returns the process that holds the namespace, the zero Owner
// when none runs.
func (ns *Namespace) Holder() Owner {
	r, err := ns.record()
	if err != nil || !r.Holder.alive() {
		return Owner{}
	}
	return r.Holder
}

// open returns a handle of the namespace, netns.None() when no holder
// runs.
func (ns *Namespace) open() (netns.NsHandle, error) {
	o := ns.Holder()
	if o.Pid == 0 {
		return netns.None(), nil
	}
	h, err := netns.GetFromPath(fmt.Sprintf("/proc/%d/ns/net", o.Pid))
	if err != nil || !o.alive() { // opened, but it may be another process's by now
		if h.IsOpen() {
			h.Close()
		}
		return netns.None(), nil
	}
	return h, nil
}

// ensure returns a handle of the namespace, starting its holder first
// when none runs, or when its slirp4netns has ended (it is then told to
// end). The caller holds the lock.
func (ns *Namespace) ensure() (netns.NsHandle, error) {
	if r, err := ns.record(); err == nil && r.Holder.alive() && !r.Slirp.alive() {
		syscall.Kill(r.Holder.Pid, syscall.SIGTERM)
	} else if h, err := ns.open(); err != nil || h.IsOpen() {
		return h, err
	}
	if err := ns.startHolder(); err != nil {
		return netns.None(), fmt.Errorf("rootless network namespace: %w", err)
	}
	h, err := ns.open()
	if err == nil && !h.IsOpen() {
		err = errors.New("rootless network namespace: its holder ended at once")
	}
	return h, err
}

// startHolder starts the holder in a new network namespace (of the
// caller's user namespace), waits until it has set loopback up and
// forwarding on, attaches slirp4netns to it and records both. slirp4netns
// runs here, in the caller's network namespace (its way out), and ends
// with the holder, which keeps the only write end of its exit pipe. The
// caller holds the lock.
func (ns *Namespace) startHolder() error {
	if err := SlirpUsable(); err != nil {
		return err
	}
	report, reportW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer report.Close()
	exitR, exitW, err := os.Pipe()
	if err != nil {
		reportW.Close()
		return err
	}
	defer exitR.Close()
	log, err := os.OpenFile(filepath.Join(ns.RunDir, nsLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		reportW.Close()
		exitW.Close()
		return err
	}
	defer log.Close()
	cmd := reexec.Command(reexec.NetNSHolder, "unionfuse-netns", os.Environ(), ns.RunDir, ns.StateDir)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = log, log
	cmd.ExtraFiles = []*os.File{reportW, exitW} // fd 3: its report; fd 4: slirp4netns's life
	usernsref.Pass(cmd)                         // the user namespace must outlive it
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET, Setsid: true}
	err = cmd.Start()
	reportW.Close()
	exitW.Close()
	if err != nil {
		return err
	}
	fail := func(err error) error {
		cmd.Process.Kill()
		cmd.Wait()
		return err
	}
	report.SetReadDeadline(time.Now().Add(nsReadyWait))
	line, rerr := bufio.NewReader(report).ReadString('\n')
	if line = strings.TrimSpace(line); line != "ok" {
		if line == "" {
			line = fmt.Sprintf("its holder did not get ready: %v", rerr)
		}
		return fail(errors.New(line))
	}
	// slirp4netns outlives this process: its output goes to the log, not
	// to a pipe that nobody would read.
	slirp, err := launchSlirp(cmd.Process.Pid, exitR, log)
	if err != nil {
		return fail(err)
	}
	rec := nsRecordData{Holder: Owner{Pid: cmd.Process.Pid}, Slirp: Owner{Pid: slirp.Process.Pid}}
	rec.Holder.Start, err = daemon.StartTime(rec.Holder.Pid)
	if err == nil {
		rec.Slirp.Start, err = daemon.StartTime(rec.Slirp.Pid)
	}
	if err == nil {
		b, _ := json.Marshal(rec)
		err = atomicfile.WriteFile(filepath.Join(ns.RunDir, nsRecord), b, 0o600)
	}
	if err != nil {
		err = fail(err) // slirp4netns ends with it
		slirp.Wait()
		return err
	}
	// Reaped should they end while this process runs.
	go cmd.Wait()
	go slirp.Wait()
	return nil
}

// runNetNSHolder is the main function of the holder: in its new network
// namespace it sets loopback up and forwarding on and reports on fd 3;
// then it holds the namespace, and on fd 4 the write end of slirp4netns's
// exit pipe, until no live process holds a lease on any of the user's
// networks, or SIGTERM.
func runNetNSHolder() int {
	report := os.NewFile(3, "report")
	fail := func(err error) int {
		fmt.Fprintf(report, "%v\n", err)
		return 1
	}
	if len(os.Args) != 3 {
		return fail(errors.New("usage: unionfuse-netns RUNDIR STATEDIR"))
	}
	ns := &Namespace{RunDir: os.Args[1], StateDir: os.Args[2]}
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		return fail(fmt.Errorf("loopback: %w", err))
	}
	if err := enableForwarding(); err != nil {
		return fail(err)
	}
	fmt.Fprintln(report, "ok")
	report.Close()

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(nsIdleCheck)
	defer tick.Stop()
	idleBefore := false
	for {
		select {
		case <-signals:
			ns.leave()
			return 0
		case <-tick.C:
			idle := !ns.leased()
			if idle && idleBefore && ns.leaveIfIdle() {
				return 0
			}
			idleBefore = idle
		}
	}
}

// leaveIfIdle removes the record, under the lock, when still no live
// process holds a lease; it reports whether it did. An attach takes the
// lock before it looks for the holder and keeps it until its lease is
// written, so it either finds the record gone (and starts a holder) or
// its lease keeps this one.
func (ns *Namespace) leaveIfIdle() bool {
	unlock, err := ns.lockFile(0)
	if errors.Is(err, os.ErrNotExist) {
		return true // the run directory is gone, and the record with it
	}
	if err != nil {
		return false
	}
	defer unlock()
	if ns.leased() {
		return false
	}
	ns.removeRecord()
	return true
}

// leave removes the record under the lock.
func (ns *Namespace) leave() {
	if unlock, err := ns.lockFile(0); err == nil {
		ns.removeRecord()
		unlock()
	}
}

// removeRecord removes the record when it names this process.
func (ns *Namespace) removeRecord() {
	if r, err := ns.record(); err == nil && r.Holder.Pid == os.Getpid() {
		os.Remove(filepath.Join(ns.RunDir, nsRecord))
	}
}

// leased reports whether a live process holds a lease in one of the
// lease files of StateDir (read without their locks: they are replaced
// whole).
func (ns *Namespace) leased() bool {
	files, _ := filepath.Glob(filepath.Join(ns.StateDir, "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var l leases
		if json.Unmarshal(b, &l) != nil {
			continue
		}
		for _, le := range l.Leases {
			if le.Owner.alive() {
				return true
			}
		}
	}
	return false
}
