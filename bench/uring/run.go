package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const enableURingPath = "/sys/module/fuse/parameters/enable_uring"

var (
	// current is the mount being measured, detached on SIGINT/SIGTERM.
	current atomic.Value

	uringMu    sync.Mutex
	uringSaved string // what enable_uring was before we set it; "" when untouched
)

// enableURing sets enable_uring to Y, remembering what it was.
func enableURing() error {
	uringMu.Lock()
	defer uringMu.Unlock()
	b, err := os.ReadFile(enableURingPath)
	if err != nil {
		return fmt.Errorf("FUSE over io_uring not built in: %w", err)
	}
	if uringSaved == "" {
		uringSaved = strings.TrimSpace(string(b))
	}
	return os.WriteFile(enableURingPath, []byte("Y"), 0o644)
}

// restoreURing puts enable_uring back as enableURing found it.
func restoreURing() {
	uringMu.Lock()
	defer uringMu.Unlock()
	if uringSaved == "" {
		return
	}
	if err := os.WriteFile(enableURingPath, []byte(uringSaved), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "restore enable_uring:", err)
		return
	}
	uringSaved = ""
}

// numQueues is the kernel's number of queues: num_possible_cpus().
func numQueues() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 1
	}
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexAny(s, "-,"); i >= 0 {
		s = s[i+1:]
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 1
	}
	return n + 1
}

// serveMount mounts the trivial filesystem on mnt over transport and
// returns the function that unmounts it and waits for the server.
func serveMount(c config, transport, mnt string, f *fsys) (stop func(), err error) {
	if transport == "gofuse" {
		srv, err := mountGoFuse(mnt, f)
		if err != nil {
			return nil, err
		}
		return func() { srv.Unmount() }, nil
	}
	uring := transport == "uring"
	if uring {
		if err := enableURing(); err != nil {
			return nil, err
		}
		defer restoreURing()
	}
	fd, err := mountFuse(mnt)
	if err != nil {
		return nil, err
	}
	var dones []chan struct{}
	stop = func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
		for _, d := range dones {
			<-d
		}
		unix.Close(fd)
	}
	if err := handshake(fd, uring, c.maxWrite); err != nil {
		stop()
		return nil, err
	}
	threads := c.devThreads
	if uring {
		threads = 1 // only FORGET and INTERRUPT come this way
	}
	dones = append(dones, serveDev(fd, f, threads, c.maxWrite))
	if uring {
		d, err := startQueues(fd, f, c.depth, c.maxWrite, c.pin)
		dones = append(dones, d)
		if err != nil {
			stop()
			return nil, err
		}
	}
	return stop, nil
}

// runOnce mounts, runs k callers at once, and unmounts.
func runOnce(c config, transport string, k int) (result, error) {
	mnt, err := os.MkdirTemp("", "uringbench-")
	if err != nil {
		return result{}, err
	}
	defer os.Remove(mnt)
	f := newFsys()
	op := c.op
	if transport == "pipe" {
		op = "pipe" // the yardstick: no FUSE at all
	} else {
		current.Store(mnt)
		stop, err := serveMount(c, transport, mnt, f)
		if err != nil {
			return result{}, err
		}
		defer stop()
		if _, err := os.Stat(filepath.Join(mnt, "warm-up")); !errors.Is(err, os.ErrNotExist) {
			return result{}, fmt.Errorf("warm-up stat: %v", err)
		}
	}
	before, ringBefore := f.reqs.Load(), f.ringReqs.Load()
	cmds := make([]*exec.Cmd, k)
	outs := make([]bytes.Buffer, k)
	for i := range cmds {
		cmds[i] = exec.Command("/proc/self/exe", "call", op, mnt, strconv.Itoa(c.n), strconv.Itoa(i))
		cmds[i].Stdout = &outs[i]
		cmds[i].Stderr = os.Stderr
		if err := cmds[i].Start(); err != nil {
			return result{}, err
		}
	}
	var r result
	var slowest float64
	var ru0, ru1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			return result{}, fmt.Errorf("caller: %w", err)
		}
		var ns, cpu float64
		if _, err := fmt.Sscan(outs[i].String(), &ns, &cpu); err != nil {
			return result{}, fmt.Errorf("caller output %q", outs[i].String())
		}
		r.cpuPer += cpu / 1e3 / float64(k)
		r.usPerOp += ns / 1e3 / float64(k)
		slowest = max(slowest, ns*float64(c.n)/1e6) // ms
	}
	unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	r.srvCPUPer = float64(cpuNs(&ru1)-cpuNs(&ru0)) / 1e3 / float64(k*c.n)
	r.kops = float64(k*c.n) / slowest
	r.reqsPer = float64(f.reqs.Load()-before) / float64(k*c.n)
	r.ringPer = float64(f.ringReqs.Load()-ringBefore) / float64(k*c.n)
	return r, nil
}

func cpuNs(ru *unix.Rusage) int64 { return ru.Utime.Nano() + ru.Stime.Nano() }

// call is a caller process: call OP MNT N ID repeats OP N times under MNT
// and prints the mean nanoseconds of one.
func call(args []string) int {
	if len(args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: uringbench call stat|getxattr|create|pipe MNT N ID")
		return 2
	}
	op, mnt := args[0], args[1]
	n, _ := strconv.Atoi(args[2])
	if op == "pipe" {
		return pingPong(n)
	}
	missing := filepath.Join(mnt, "missing")
	buf := make([]byte, 64)
	names := make([]string, n)
	for i := range names {
		names[i] = filepath.Join(mnt, fmt.Sprintf("f%s-%d", args[3], i))
	}
	var st unix.Stat_t
	var ru0, ru1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	start := time.Now()
	for i := range n {
		var err error
		switch op {
		case "stat":
			if err = unix.Stat(missing, &st); err == unix.ENOENT {
				err = nil
			}
		case "getxattr":
			if _, err = unix.Getxattr(mnt, "user.x", buf); err == unix.ENODATA {
				err = nil
			}
		case "create":
			var fd int
			if fd, err = unix.Open(names[i], unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644); err == nil {
				unix.Close(fd)
				err = unix.Unlink(names[i])
			}
		default:
			err = fmt.Errorf("unknown op %q", op)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "call:", err)
			return 1
		}
	}
	wall := time.Since(start)
	unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	fmt.Println(float64(wall.Nanoseconds())/float64(n), float64(cpuNs(&ru1)-cpuNs(&ru0))/float64(n))
	return 0
}
