// Command nettool is the container side of bench/network: a static
// binary put into the benchmark's busybox image, so that what is measured
// is the network path and not busybox nc's small buffers or its start.
// The network tests use it too, for UDP, which busybox nc lacks.
//
//	nettool send ADDR MIB   connect, write 's' and MIB MiB, close
//	nettool ping ADDR N     N times: connect, write 'p', read one byte,
//	                        close; print the median time in ms
//	nettool serve PORT      listen on PORT: a connection starting with
//	                        'p' gets one byte back, one starting with 's'
//	                        is read to EOF; then closed
//	nettool udpecho PORT    answer every UDP datagram to PORT with itself
//
// Speaking one protocol, the host side (bench/network) is the same server
// and client for every system.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/unionfuse/unionfuse/bench/network/wire"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "serve" {
		fail(serve(os.Args[2]))
	}
	if len(os.Args) == 3 && os.Args[1] == "udpecho" {
		fail(udpEcho(os.Args[2]))
	}
	if len(os.Args) != 4 {
		fail(fmt.Errorf("usage: nettool send ADDR MIB | ping ADDR N | serve PORT | udpecho PORT"))
	}
	n, err := strconv.Atoi(os.Args[3])
	switch {
	case err != nil:
	case os.Args[1] == "send":
		err = send(os.Args[2], n)
	case os.Args[1] == "ping":
		err = ping(os.Args[2], n)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "nettool:", err)
	os.Exit(1)
}

// send writes 's' and mib MiB to addr.
func send(addr string, mib int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	if _, err := c.Write([]byte{wire.Send}); err != nil {
		return err
	}
	for i := 0; i < mib; i++ {
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
	return c.Close()
}

// ping prints the median, over n connections, of connect + one byte each
// way + close, in ms.
func ping(addr string, n int) error {
	ts := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		b := []byte{wire.Ping}
		if _, err := c.Write(b); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return err
		}
		c.Close()
		ts = append(ts, time.Since(start).Seconds()*1000)
	}
	sort.Float64s(ts)
	fmt.Printf("%.3f\n", ts[len(ts)/2])
	return nil
}

// serve answers pings and sinks sends on port, forever.
func serve(port string) error {
	l, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return err
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go wire.Serve(c)
	}
}

// udpEcho sends every datagram to port back to its sender.
func udpEcho(port string) error {
	c, err := net.ListenPacket("udp", ":"+port)
	if err != nil {
		return err
	}
	b := make([]byte, 65536)
	for {
		n, from, err := c.ReadFrom(b)
		if err != nil {
			return err
		}
		if _, err := c.WriteTo(b[:n], from); err != nil {
			return err
		}
	}
}
