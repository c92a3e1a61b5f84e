package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// registry is a running docker-registry (CNCF distribution 2.8) on
// 127.0.0.1, its storage in a directory of its own, reached through a
// proxy that counts the bytes each way.
type registry struct {
	once  sync.Once
	cmd   *exec.Cmd
	dir   string
	addr  string // where docker-registry listens
	proxy *countingProxy
}

// Host is what clients are given: the proxy's address.
func (r *registry) Host() string { return r.proxy.addr }

// startRegistry starts docker-registry with its storage in dir, on a free
// port, and a counting proxy in front of it.
func startRegistry(dir string) (*registry, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"+
		"storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "data"), addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	r := &registry{dir: dir, addr: addr, cmd: exec.Command("docker-registry", "serve", cfgPath)}
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	// The registry ends with the bench, however the bench ends: a bench
	// killed, or interrupted while the registry started (before close
	// knew of it), left it running.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start docker-registry: %w", err)
	}
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Since(start) > 10*time.Second {
			r.stop()
			log, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("docker-registry did not answer at %s: %v\n%s", addr, err, log)
		}
	}
	if r.proxy, err = newCountingProxy(addr); err != nil {
		r.stop()
		return nil, err
	}
	return r, nil
}

// stop stops the proxy and docker-registry (by its pid), once.
func (r *registry) stop() { r.once.Do(r.halt) }

func (r *registry) halt() {
	if r.proxy != nil {
		r.proxy.close()
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		r.cmd.Process.Kill()
		<-done
	}
}

// countingProxy relays TCP connections to a target and counts the bytes:
// down (target to client) and up (client to target).
type countingProxy struct {
	l        net.Listener
	addr     string
	down, up atomic.Int64
	wg       sync.WaitGroup
}

func newCountingProxy(target string) (*countingProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{l: l, addr: l.Addr().String()}
	go p.serve(target)
	return p, nil
}

func (p *countingProxy) serve(target string) {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer c.Close()
			u, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer u.Close()
			done := make(chan struct{})
			go func() {
				io.Copy(counter{u, &p.up}, c)
				u.(*net.TCPConn).CloseWrite()
				close(done)
			}()
			io.Copy(counter{c, &p.down}, u)
			c.(*net.TCPConn).CloseWrite()
			<-done
		}()
	}
}

// counter counts what is written through it.
type counter struct {
	w io.Writer
	n *atomic.Int64
}

func (c counter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// reset zeroes the counters and returns what they held.
func (p *countingProxy) reset() (down, up int64) {
	return p.down.Swap(0), p.up.Swap(0)
}

func (p *countingProxy) close() { p.l.Close() }
