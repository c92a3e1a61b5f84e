// Package regserver runs a docker-registry (CNCF distribution 2.8) for a
// benchmark: on 127.0.0.1, its storage in a directory of its own, ended
// with the benchmark however it ends, and reached through a proxy that
// counts the bytes each way and can hold the download to a given rate.
package regserver

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

// Registry is a running docker-registry on 127.0.0.1, its storage in a
// directory of its own, reached through a proxy that counts the bytes
// each way.
type Registry struct {
	once sync.Once
	cmd  *exec.Cmd
	// Dir holds the registry's configuration, log and storage.
	Dir  string
	addr string // where docker-registry listens
	// Proxy is what clients reach (Host).
	Proxy *Proxy
}

// Host is what clients are given: the proxy's address.
func (r *Registry) Host() string { return r.Proxy.addr }

// Pid is docker-registry's process id.
func (r *Registry) Pid() int { return r.cmd.Process.Pid }

// Start starts docker-registry with its storage in dir, on a free port,
// and a counting proxy in front of it.
func Start(dir string) (*Registry, error) {
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
	r := &Registry{Dir: dir, addr: addr, cmd: exec.Command("docker-registry", "serve", cfgPath)}
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
			r.Stop()
			log, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("docker-registry did not answer at %s: %v\n%s", addr, err, log)
		}
	}
	if r.Proxy, err = newProxy(addr); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

// Stop stops the proxy and docker-registry (by its pid), once.
func (r *Registry) Stop() { r.once.Do(r.halt) }

func (r *Registry) halt() {
	if r.Proxy != nil {
		r.Proxy.Close()
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

// Proxy relays TCP connections to a target and counts the bytes: down
// (target to client) and up (client to target). SetRate holds the
// download of all connections together to a rate.
type Proxy struct {
	l        net.Listener
	addr     string
	down, up atomic.Int64
	wg       sync.WaitGroup
	limit    limiter
}

func newProxy(target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{l: l, addr: l.Addr().String()}
	go p.serve(target)
	return p, nil
}

// SetRate holds the bytes sent down, over all connections, to
// bytesPerSecond; 0 lifts the limit.
func (p *Proxy) SetRate(bytesPerSecond int64) { p.limit.setRate(bytesPerSecond) }

func (p *Proxy) serve(target string) {
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
				io.Copy(counter{w: u, n: &p.up}, c)
				u.(*net.TCPConn).CloseWrite()
				close(done)
			}()
			io.Copy(counter{w: c, n: &p.down, limit: &p.limit}, u)
			c.(*net.TCPConn).CloseWrite()
			<-done
		}()
	}
}

// counter counts what is written through it, at the rate limit allows
// when it has one.
type counter struct {
	w     io.Writer
	n     *atomic.Int64
	limit *limiter
}

func (c counter) Write(b []byte) (int, error) {
	if c.limit != nil {
		c.limit.wait(len(b))
	}
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// Reset zeroes the counters and returns what they held.
func (p *Proxy) Reset() (down, up int64) {
	return p.down.Swap(0), p.up.Swap(0)
}

// Close stops accepting connections.
func (p *Proxy) Close() { p.l.Close() }

// limiter spaces writes so that they add up to a rate: each write takes
// the next free stretch of time its size needs, and waits for its start.
type limiter struct {
	mu   sync.Mutex
	rate int64 // bytes per second; 0: no limit
	next time.Time
}

func (l *limiter) setRate(r int64) {
	l.mu.Lock()
	l.rate, l.next = r, time.Time{}
	l.mu.Unlock()
}

func (l *limiter) wait(n int) {
	l.mu.Lock()
	if l.rate <= 0 {
		l.mu.Unlock()
		return
	}
	start := time.Now()
	if l.next.After(start) {
		start = l.next
	}
	l.next = start.Add(time.Duration(int64(n) * int64(time.Second) / l.rate))
	l.mu.Unlock()
	time.Sleep(time.Until(start))
}
