// Command uringbench measures the FUSE round trip over io_uring against
// /dev/fuse on this machine (issue 17, step 1). It serves one trivial
// filesystem (a root directory of empty files: LOOKUP, GETATTR, SETATTR,
// CREATE, UNLINK, GETXATTR) over three transports:
//
//	uring   FUSE over io_uring: one queue per CPU, each an io_uring with
//	        128-byte SQEs served by a goroutine locked to an OS thread
//	        pinned to that CPU (queue.go, ring.go; raw system calls)
//	dev     the same handler on /dev/fuse: read, answer, write, from
//	        -devthreads threads (dev.go)
//	gofuse  go-fuse's fuse.Server with the same answers (gofuse.go):
//	        the /dev/fuse server unionfuse runs on today
//
// Callers are separate processes (uringbench call ...) that repeat one
// system call N times and report the mean time of one. Runs are
// interleaved (uring, dev, gofuse, then the reverse order, ...), and the
// summary gives the median and range over the repetitions.
//
// Run as root from the repository root:
//
//	go run ./bench/uring -reps 7 -n 20000 -op stat
//
// FUSE over io_uring needs /sys/module/fuse/parameters/enable_uring = Y
// while the mount is set up: uringbench turns it on for the few
// milliseconds between mount and queue registration and puts back what it
// found (also on SIGINT/SIGTERM); a connection keeps io_uring once set up.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

type config struct {
	reps, n, depth, devThreads int
	maxWrite                   uint32
	pin                        bool
	op                         string
	callers                    []int
	transports                 []string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "call" {
		os.Exit(call(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "pong" {
		os.Exit(pong())
	}
	var c config
	var callers, transports string
	var maxWrite uint
	flag.IntVar(&c.reps, "reps", 7, "repetitions of every (transport, callers) pair")
	flag.IntVar(&c.n, "n", 20000, "system calls per caller and run")
	flag.IntVar(&c.depth, "depth", 2, "io_uring entries per queue (per CPU)")
	flag.BoolVar(&c.pin, "pin", true, "pin each io_uring queue's thread to its CPU")
	flag.IntVar(&c.devThreads, "devthreads", 2, "reader threads of the dev transport")
	flag.UintVar(&maxWrite, "maxwrite", 1<<20, "max_write of the mount (sizes each io_uring payload buffer)")
	flag.StringVar(&c.op, "op", "stat", "what callers repeat: stat (LOOKUP of a missing name), getxattr (GETXATTR), create (create+close+unlink; not for gofuse, which answers only LOOKUP, GETATTR, GETXATTR)")
	flag.StringVar(&callers, "callers", "1,2", "numbers of concurrent callers")
	flag.StringVar(&transports, "transports", "uring,dev,gofuse,pipe", "transports to compare (pipe: a pipe round trip between two processes, no FUSE)")
	flag.Parse()
	c.maxWrite = uint32(maxWrite)
	for _, s := range strings.Split(callers, ",") {
		var k int
		if _, err := fmt.Sscan(s, &k); err != nil || k < 1 {
			fmt.Fprintln(os.Stderr, "bad -callers:", s)
			os.Exit(2)
		}
		c.callers = append(c.callers, k)
	}
	c.transports = strings.Split(transports, ",")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		restoreURing()
		if mnt, ok := current.Load().(string); ok {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
		os.Exit(130)
	}()
	defer restoreURing()
	if err := bench(c); err != nil {
		fmt.Fprintln(os.Stderr, "uringbench:", err)
		restoreURing()
		os.Exit(1)
	}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

type result struct {
	usPerOp float64 // mean time of one call, averaged over the callers
	kops    float64 // all callers' calls per ms of the slowest caller
	reqsPer float64 // FUSE requests per call
	ringPer float64 // of which through io_uring
	// cpuPer and srvCPUPer are the CPU time (user+system) of one call in
	// the caller and in the server: a cost the machine's load hardly moves.
	cpuPer, srvCPUPer float64
}

func bench(c config) error {
	host, _ := os.Hostname()
	fmt.Printf("uringbench on %s, %d CPUs, op %s, %d calls per caller, %d reps, depth %d, max_write %d, queues pinned %v, GOMAXPROCS %d\n",
		host, numQueues(), c.op, c.n, c.reps, c.depth, c.maxWrite, c.pin, runtime.GOMAXPROCS(0))
	fmt.Printf("load before: %s\n", loadavg())
	res := map[string][]result{}
	key := func(t string, k int) string { return fmt.Sprintf("%s/%d", t, k) }
	for rep := range c.reps {
		order := slices.Clone(c.transports)
		if rep%2 == 1 {
			slices.Reverse(order)
		}
		for _, k := range c.callers {
			for _, t := range order {
				r, err := runOnce(c, t, k)
				if err != nil {
					return fmt.Errorf("rep %d %s callers %d: %w", rep, t, k, err)
				}
				fmt.Printf("rep %d  %-7s callers %d  %7.2f us/call  %6.1f kcalls/s  cpu %5.2f+%5.2f us  %.2f req/call (%.2f by io_uring)  load %s\n",
					rep, t, k, r.usPerOp, r.kops, r.cpuPer, r.srvCPUPer, r.reqsPer, r.ringPer, loadavg())
				res[key(t, k)] = append(res[key(t, k)], r)
			}
		}
	}
	fmt.Printf("load after: %s\n", loadavg())
	fmt.Println()
	fmt.Printf("%-8s %-7s %8s %16s %12s %22s %9s\n", "callers", "transp.", "median", "range (us/call)", "kcalls/s", "cpu us/call cl.+srv.", "req/call")
	for _, k := range c.callers {
		for _, t := range c.transports {
			rs := res[key(t, k)]
			us := make([]float64, len(rs))
			ks := make([]float64, len(rs))
			cc := make([]float64, len(rs))
			sc := make([]float64, len(rs))
			for i, r := range rs {
				us[i], ks[i], cc[i], sc[i] = r.usPerOp, r.kops, r.cpuPer, r.srvCPUPer
			}
			for _, v := range [][]float64{us, ks, cc, sc} {
				slices.Sort(v)
			}
			fmt.Printf("%-8d %-7s %8.2f %7.2f – %-6.2f %12.1f %12.2f + %-7.2f %9.2f\n", k, t, median(us), us[0], us[len(us)-1], median(ks), median(cc), median(sc), rs[0].reqsPer)
		}
	}
	// Ratios taken rep by rep (the two sides ran next to each other).
	fmt.Println()
	for _, k := range c.callers {
		for _, a := range c.transports {
			for _, b := range c.transports {
				ra, rb := res[key(a, k)], res[key(b, k)]
				if a == b || b != c.transports[1] && b != "pipe" || a != c.transports[0] {
					continue
				}
				q := make([]float64, len(ra))
				for i := range ra {
					q[i] = ra[i].usPerOp / rb[i].usPerOp
				}
				slices.Sort(q)
				fmt.Printf("callers %d  %s/%s paired ratio: median %.2f, range %.2f – %.2f\n", k, a, b, median(q), q[0], q[len(q)-1])
			}
		}
	}
	return nil
}

func median(v []float64) float64 {
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
