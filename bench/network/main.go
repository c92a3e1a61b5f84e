// Command network measures container networking: TCP throughput and
// connection latency from a container to a server on the host, and from
// the host to a container's published port, for unionfuse's root bridge
// (and rootless slirp4netns when /dev/net/tun is open to the user),
// podman 4.3 (--runtime runc --cgroup-manager cgroupfs: the root CNI
// bridge) and host loopback (the ceiling). Every server listens on this
// machine's own addresses. The container side is busybox (dd, nc): the
// latencies include starting busybox nc, for every system alike.
//
//	go run ./bench/network -unionfuse bin/unionfuse -tarball busybox.tar.gz [-mib 256] [-conns 100]
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

var (
	unionfuse = flag.String("unionfuse", "bin/unionfuse", "the unionfuse binary")
	tarball   = flag.String("tarball", "", "a busybox root filesystem tarball (imported as busybox:latest)")
	mib       = flag.Int("mib", 256, "MiB sent per throughput run")
	conns     = flag.Int("conns", 100, "connections per latency run")
	skipPod   = flag.Bool("no-podman", false, "leave podman out")
)

// system runs a container: args before the image (network options).
type system struct {
	name string
	run  func(opts []string, sh string) *exec.Cmd
	gw   string // the host's address as the container reaches it
}

func main() {
	flag.Parse()
	if *tarball == "" {
		log.Fatal("-tarball is needed")
	}
	dir, _ := os.MkdirTemp("", "netbench")
	defer os.RemoveAll(dir)
	env := append(os.Environ(), "UNIONFUSE_ROOT="+dir+"/store")
	must(exec.Command("sh", "-c", "UNIONFUSE_ROOT="+dir+"/store "+*unionfuse+" import "+*tarball+" busybox:latest >/dev/null").Run())
	uf := func(opts []string, sh string) *exec.Cmd {
		c := exec.Command(*unionfuse, append(append(append([]string{"run", "--rm"}, opts...), "busybox", "sh", "-c"), sh)...)
		c.Env = env
		return c
	}
	systems := []system{{name: "unionfuse root bridge", run: uf, gw: gatewayOf(uf)}}
	if !*skipPod {
		pod := func(opts []string, sh string) *exec.Cmd {
			return exec.Command("podman", append(append(append([]string{"--runtime", "runc", "--cgroup-manager", "cgroupfs", "run", "--rm"}, opts...),
				"localhost/netbench-busybox", "sh", "-c"), sh)...)
		}
		if exec.Command("podman", "import", *tarball, "netbench-busybox").Run() == nil {
			defer exec.Command("podman", "rmi", "-f", "netbench-busybox").Run()
			systems = append(systems, system{name: "podman root CNI bridge", run: pod, gw: gatewayOf(pod)})
		}
	}
	fmt.Printf("| system | container→host MiB/s | container→host conn ms | host→published MiB/s | host→published conn ms |\n|---|---|---|---|---|\n")
	lo := loopback()
	fmt.Printf("| host loopback (ceiling) | %.0f | %.2f | %.0f | %.2f |\n", lo[0], lo[1], lo[0], lo[1])
	for _, s := range systems {
		if s.gw == "" {
			fmt.Printf("| %s | no gateway found | | | |\n", s.name)
			continue
		}
		fmt.Printf("| %s | %.0f | %.2f | %.0f | %.2f |\n", s.name, toHost(s), toHostLatency(s), toPublished(s), publishedLatency(s))
	}
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// gatewayOf is the default route's gateway in a container of run.
func gatewayOf(run func([]string, string) *exec.Cmd) string {
	out, err := run(nil, "ip route").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "via" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// sink accepts connections on l and reports, per connection, the bytes
// read and the time from accept to EOF.
func sink(l net.Listener, res chan<- [2]float64) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			start := time.Now()
			n, _ := io.Copy(io.Discard, c)
			c.Close()
			res <- [2]float64{float64(n), time.Since(start).Seconds()}
		}()
	}
}

// toHost: the container sends -mib MiB to a server on the gateway.
func toHost(s system) float64 {
	l, _ := net.Listen("tcp", net.JoinHostPort(s.gw, "0"))
	defer l.Close()
	res := make(chan [2]float64, 1)
	go sink(l, res)
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	must(s.run(nil, fmt.Sprintf("dd if=/dev/zero bs=65536 count=%d 2>/dev/null | nc %s %s", *mib*16, s.gw, port)).Run())
	r := <-res
	return r[0] / r[1] / (1 << 20)
}

// toHostLatency: -conns connections made one after another by nc in the
// container; per connection, the time from the host's accept to the EOF
// of the container's close (ms).
func toHostLatency(s system) float64 {
	l, _ := net.Listen("tcp", net.JoinHostPort(s.gw, "0"))
	defer l.Close()
	res := make(chan [2]float64, *conns)
	go sink(l, res)
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	must(s.run(nil, fmt.Sprintf("i=0; while [ $i -lt %d ]; do nc %s %s </dev/null; i=$((i+1)); done", *conns, s.gw, port)).Run())
	total := 0.0
	for i := 0; i < *conns; i++ {
		total += (<-res)[1]
	}
	return total * 1000 / float64(*conns)
}

// published starts a detached-like container (run in the background)
// serving sh on port 5000 published on a free host port; it returns the
// host port and a stop function.
func published(s system, sh string) (string, func()) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := s.run([]string{"-p", "127.0.0.1:" + port + ":5000"}, sh)
	must(cmd.Start())
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return port, func() { cmd.Process.Kill(); cmd.Wait() }
}

// toPublished: the host sends -mib MiB to nc listening in the container.
func toPublished(s system) float64 {
	port, stop := published(s, "nc -l -p 5000 >/dev/null; nc -l -p 5000 >/dev/null")
	defer stop()
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	must(err)
	buf := make([]byte, 65536)
	start := time.Now()
	for i := 0; i < *mib*16; i++ {
		if _, err := c.Write(buf); err != nil {
			break
		}
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
	return float64(*mib) / time.Since(start).Seconds()
}

// publishedLatency: connect and read one line, -conns times, from nc
// restarted in a loop in the container.
func publishedLatency(s system) float64 {
	port, stop := published(s, "while :; do echo x | nc -l -p 5000; done")
	defer stop()
	var total time.Duration
	n := 0
	for i := 0; i < *conns; i++ {
		start := time.Now()
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(c)
		c.Close()
		if string(b) == "x\n" {
			total += time.Since(start)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return total.Seconds() * 1000 / float64(n)
}

// loopback is the ceiling: throughput and connect+EOF time on 127.0.0.1.
func loopback() [2]float64 {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	res := make(chan [2]float64, *conns+1)
	go sink(l, res)
	c, _ := net.Dial("tcp", l.Addr().String())
	buf := make([]byte, 65536)
	for i := 0; i < *mib*16; i++ {
		c.Write(buf)
	}
	c.Close()
	r := <-res
	start := time.Now()
	for i := 0; i < *conns; i++ {
		c, _ := net.Dial("tcp", l.Addr().String())
		c.Close()
		<-res
	}
	return [2]float64{r[0] / r[1] / (1 << 20), time.Since(start).Seconds() * 1000 / float64(*conns)}
}
