package network

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
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
	// slirpStable is how long slirp4netns must have run for its end to
	// be restarted at once; one that ends sooner is restarted after a
	// wait that doubles each time, up to slirpRetryMax.
	slirpStable   = 10 * time.Second
	slirpRetryMax = 30 * time.Second
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

// nsRecordData is the record: the holder, its thread that holds the
// namespace, and its slirp4netns (the one running now).
type nsRecordData struct {
	Holder Owner
	Thread int
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

// open returns a handle of the namespace, netns.None() when no holder
// runs.
func (ns *Namespace) open() (netns.NsHandle, error) {
	r, err := ns.record()
	if err != nil || !r.Holder.alive() {
		return netns.None(), nil
	}
	path := fmt.Sprintf("/proc/%d/task/%d/ns/net", r.Holder.Pid, r.Thread)
	if r.Thread == 0 { // a record without the thread: the whole holder is in the namespace
		path = fmt.Sprintf("/proc/%d/ns/net", r.Holder.Pid)
	}
	h, err := netns.GetFromPath(path)
	if err != nil || !r.Holder.alive() { // opened, but it may be another process's by now
		if h.IsOpen() {
			h.Close()
		}
		return netns.None(), nil
	}
	return h, nil
}

// ensure returns a handle of the namespace, starting its holder first
// when none runs. The caller holds the lock.
func (ns *Namespace) ensure() (netns.NsHandle, error) {
	if h, err := ns.open(); err != nil || h.IsOpen() {
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

// startHolder starts the holder and waits until it reports ready: its
// namespace made, loopback up, forwarding on, slirp4netns attached and
// the record written. The caller holds the lock.
func (ns *Namespace) startHolder() error {
	if err := SlirpUsable(); err != nil {
		return err
	}
	report, reportW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer report.Close()
	log, err := os.OpenFile(filepath.Join(ns.RunDir, nsLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		reportW.Close()
		return err
	}
	defer log.Close()
	cmd := reexec.Command(reexec.NetNSHolder, "unionfuse-netns", os.Environ(), ns.RunDir, ns.StateDir)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = log, log    // slirp4netns's output goes there too
	cmd.ExtraFiles = []*os.File{reportW} // fd 3: its report
	usernsref.Pass(cmd)                  // the user namespace must outlive it
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	reportW.Close()
	if err != nil {
		return err
	}
	report.SetReadDeadline(time.Now().Add(nsReadyWait))
	line, rerr := bufio.NewReader(report).ReadString('\n')
	if line = strings.TrimSpace(line); line != "ok" {
		cmd.Process.Kill()
		cmd.Wait()
		if line == "" {
			line = fmt.Sprintf("its holder did not get ready: %v", rerr)
		}
		return errors.New(line)
	}
	go cmd.Wait() // reaped should it end while this process runs
	return nil
}

// runNetNSHolder is the main function of the holder. It runs in the
// host's network namespace, where slirp4netns must run (it is its way
// out), and holds the user's rootless one on a thread of its own
// (holdNamespace). It starts slirp4netns against that thread and starts
// it again should it end; slirp4netns ends with the holder (--exit-fd:
// the holder keeps the only write end). It reports on fd 3, then holds
// on until no live process holds a lease on any of the user's networks,
// or SIGTERM.
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
	tid, err := holdNamespace()
	if err != nil {
		return fail(err)
	}
	exitR, exitW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer exitW.Close()
	log := os.NewFile(2, filepath.Join(ns.RunDir, nsLog)) // named for the errors that point at it
	slirp, err := launchSlirp(tid, exitR, log)
	if err != nil {
		return fail(err)
	}
	rec := nsRecordData{Holder: self(), Thread: tid}
	if err := ns.recordSlirp(&rec, slirp); err != nil {
		return fail(err)
	}
	fmt.Fprintln(report, "ok")
	report.Close()

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	slirpEnded := make(chan error, 1)
	started, wait := time.Now(), time.Duration(0)
	go func() { slirpEnded <- slirp.Wait() }()
	tick := time.NewTicker(nsIdleCheck)
	defer tick.Stop()
	idleBefore := false
	for {
		select {
		case <-signals:
			ns.leave()
			return 0
		case err := <-slirpEnded:
			// The containers keep their interfaces; only the way out
			// is gone, for as long as it takes to start it again. One
			// that keeps ending is started again less and less often.
			if time.Since(started) < slirpStable {
				wait = min(max(2*wait, time.Second), slirpRetryMax)
			} else {
				wait = 0
			}
			fmt.Fprintf(os.Stderr, "unionfuse-netns %d: slirp4netns ended (%v), starting it again in %v\n", os.Getpid(), err, wait)
			time.Sleep(wait)
			started = time.Now()
			if slirp, err = launchSlirp(tid, exitR, log); err != nil {
				fmt.Fprintf(os.Stderr, "unionfuse-netns %d: %v\n", os.Getpid(), err)
				slirpEnded <- err // try again
				continue
			}
			if err := ns.recordSlirp(&rec, slirp); err != nil {
				fmt.Fprintf(os.Stderr, "unionfuse-netns %d: %v\n", os.Getpid(), err)
			}
			go func(c *exec.Cmd) { slirpEnded <- c.Wait() }(slirp)
		case <-tick.C:
			idle := !ns.leased()
			if idle && idleBefore && ns.leaveIfIdle() {
				return 0
			}
			idleBefore = idle
		}
	}
}

// recordSlirp writes the record with slirp as the running slirp4netns,
// under the lock, unless the record names another holder by now (its run
// directory was removed and another holder started).
func (ns *Namespace) recordSlirp(rec *nsRecordData, slirp *exec.Cmd) error {
	start, err := daemon.StartTime(slirp.Process.Pid)
	if err != nil {
		return err
	}
	first := rec.Slirp.Pid == 0
	rec.Slirp = Owner{Pid: slirp.Process.Pid, Start: start}
	if !first {
		// The first record is written while the starter holds the lock,
		// waiting for this holder's report.
		unlock, err := ns.lockFile(0)
		if err != nil {
			return err
		}
		defer unlock()
		if now, err := ns.record(); err != nil || now.Holder.Pid != os.Getpid() {
			return nil
		}
	}
	b, _ := json.Marshal(rec)
	return atomicfile.WriteFile(filepath.Join(ns.RunDir, nsRecord), b, 0o600)
}

// holdNamespace makes a network namespace on a thread kept for it for
// the life of the process, with loopback up and forwarding on, and
// returns the thread's id: /proc/PID/task/TID/ns/net is the namespace.
// The process's other threads stay in the host's namespace.
func holdNamespace() (tid int, err error) {
	type result struct {
		tid int
		err error
	}
	ch := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is the namespace's
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{0, fmt.Errorf("new network namespace: %w", err)}
			return // the thread ends with the goroutine
		}
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			ch <- result{0, fmt.Errorf("loopback: %w", err)}
			return
		}
		if err := enableForwarding(); err != nil {
			ch <- result{0, err}
			return
		}
		ch <- result{unix.Gettid(), nil}
		select {}
	}()
	r := <-ch
	return r.tid, r.err
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
