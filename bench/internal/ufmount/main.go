// Command ufmount serves one unionfuse union in the foreground by calling
// fs.Mount directly, for the benchmark harness in bench/:
//
//	ufmount [-cpuprofile FILE] -o lowerdir=L1:L2,upperdir=U,workdir=W MERGED
//
// It stands in for the unionfuse CLI when the CLI cannot be built or used,
// and it is how the harness profiles the filesystem: with -cpuprofile it
// writes a pprof CPU profile of the whole life of the mount. It stops when
// the union is unmounted (umount(8), fusermount3 -u) and unmounts on
// SIGTERM or SIGINT. Paths may not contain commas or colons.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/unionfuse/unionfuse/fs"
	"golang.org/x/sys/unix"
)

func main() {
	profile := flag.String("cpuprofile", "", "write a CPU profile to `FILE`")
	opts := flag.String("o", "", "lowerdir=L1:L2,upperdir=U,workdir=W")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: ufmount [-cpuprofile FILE] -o lowerdir=...,upperdir=...,workdir=... MERGED")
		os.Exit(2)
	}
	merged := flag.Arg(0)
	cfg, err := parseOptions(*opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ufmount: %v\n", err)
		os.Exit(2)
	}
	cfg.Logger = log.New(os.Stderr, "ufmount: ", log.LstdFlags)

	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			log.Fatalf("ufmount: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatalf("ufmount: %v", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	m, err := fs.Mount(merged, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ufmount: %v\n", err)
		os.Exit(1)
	}
	done := make(chan struct{})
	go func() {
		m.Wait()
		close(done)
	}()
	for {
		select {
		case <-done:
			return
		case <-sigs:
			if err := unix.Unmount(merged, 0); err != nil {
				log.Printf("ufmount: umount %s: %v; detaching lazily", merged, err)
				unix.Unmount(merged, unix.MNT_DETACH)
			}
		}
	}
}

// parseOptions reads lowerdir=, upperdir= and workdir= from a
// comma-separated option string.
func parseOptions(s string) (fs.Config, error) {
	var cfg fs.Config
	for _, o := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			cfg.Lowers = strings.Split(v, ":")
		case "upperdir":
			cfg.Upper = v
		case "workdir":
			cfg.Work = v
		case "":
		default:
			return cfg, fmt.Errorf("unknown option %q", o)
		}
	}
	if len(cfg.Lowers) == 0 {
		return cfg, fmt.Errorf("no lowerdir= given")
	}
	return cfg, nil
}
