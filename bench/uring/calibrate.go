package main

import (
	"fmt"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"
)

// pingPong is the yardstick transport "pipe": what bounds any FUSE round
// trip on this machine. It sends one byte to a child process over a pipe
// and waits for it to come back over another, n times (two wake-ups and
// two context switches, like a FUSE request and its reply), and prints the
// mean time and CPU time of one round trip as call does.
func pingPong(n int) int {
	var to, from [2]int
	if err := unix.Pipe2(to[:], unix.O_CLOEXEC); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := unix.Pipe2(from[:], unix.O_CLOEXEC); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	child := exec.Command("/proc/self/exe", "pong")
	child.Stdin = os.NewFile(uintptr(to[0]), "to")
	child.Stdout = os.NewFile(uintptr(from[1]), "from")
	if err := child.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	unix.Close(to[0])
	unix.Close(from[1])
	b := []byte{1}
	var ru0, ru1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	start := time.Now()
	for range n {
		unix.Write(to[1], b)
		unix.Read(from[0], b)
	}
	wall := time.Since(start)
	unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	unix.Close(to[1])
	unix.Close(from[0])
	child.Wait()
	fmt.Println(float64(wall.Nanoseconds())/float64(n), float64(cpuNs(&ru1)-cpuNs(&ru0))/float64(n))
	return 0
}

// pong is the child of pingPong: it echoes bytes from stdin to stdout.
func pong() int {
	b := []byte{0}
	for {
		if n, err := unix.Read(0, b); n != 1 || err != nil {
			return 0
		}
		unix.Write(1, b)
	}
}
