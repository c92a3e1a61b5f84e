package runner

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/unionfuse/unionfuse/internal/reexec"
	"golang.org/x/sys/unix"
)

// Published ports (run -p HOSTPORT:CONTAINERPORT). A container of network
// "none" has only its own loopback, so, as rootless Docker's builtin port
// driver does, the process that runs the container (`unionfuse run`, or
// the monitor of a detached one) listens on the host and relays every
// connection to the container port on the container's loopback, through a
// socket made inside the container's network namespace. It needs no
// privilege beyond the container's own: the namespace belongs to a user
// namespace of the caller's, or the caller is root.

// Port is one published port.
type Port struct {
	HostIP        string `json:",omitempty"` // "" = all of the host's addresses
	HostPort      int    // 0 = one the kernel picks when the container starts
	ContainerPort int
	Proto         string `json:",omitempty"` // "udp", or "" for tcp
}

// Protocol is the port's protocol: tcp or udp.
func (p Port) Protocol() string {
	if p.Proto == "" {
		return "tcp"
	}
	return p.Proto
}

// Key is the port as docker's maps of ports key it: 80/tcp.
func (p Port) Key() string { return strconv.Itoa(p.ContainerPort) + "/" + p.Protocol() }

// String is the port as docker ps shows it: 0.0.0.0:8080->80/tcp.
func (p Port) String() string {
	ip := p.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	return net.JoinHostPort(ip, strconv.Itoa(p.HostPort)) + "->" + p.Key()
}

// parsePort reads -p's [[IP:][HOSTPORT]:]CONTAINERPORT[/tcp|/udp];
// without a host port the kernel picks one when the container starts.
func parsePort(s string) (Port, error) {
	bad := func(why string) (Port, error) {
		return Port{}, fmt.Errorf("invalid publish %q: %s (want [[IP:][HOSTPORT]:]CONTAINERPORT[/tcp|/udp])", s, why)
	}
	spec, proto, _ := strings.Cut(s, "/")
	if proto != "" && proto != "tcp" && proto != "udp" {
		return bad("only tcp and udp ports can be published")
	}
	host, cport := "", spec
	if i := strings.LastIndex(spec, ":"); i >= 0 {
		host, cport = spec[:i], spec[i+1:]
	}
	p := Port{Proto: strings.TrimPrefix(proto, "tcp")}
	hport := host
	if j := strings.LastIndex(host, ":"); j >= 0 {
		p.HostIP, hport = strings.Trim(host[:j], "[]"), host[j+1:]
		if net.ParseIP(p.HostIP) == nil {
			return bad("the host address is not an IP address")
		}
	}
	var err error
	if hport != "" {
		if p.HostPort, err = strconv.Atoi(hport); err != nil || p.HostPort < 1 || p.HostPort > 65535 {
			return bad("the host port is not a number from 1 to 65535")
		}
	}
	if p.ContainerPort, err = strconv.Atoi(cport); err != nil || p.ContainerPort < 1 || p.ContainerPort > 65535 {
		return bad("the container port is not a number from 1 to 65535")
	}
	return p, nil
}

// publisher relays the connections of a container's published ports.
type publisher struct {
	ports     []Port
	listeners []net.Listener   // by port, nil for udp
	packets   []net.PacketConn // by port, nil for tcp
	netns     *os.File         // the container's network namespace, once serving
	pid       int              // the container's init
	helper    *socketHelper
	helperErr error
	stuck     atomic.Bool // socketIn could not go back: make sockets through the helper
	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

// listenPorts listens on the host for every port, before the container
// starts: a port that is taken fails the run before anything runs.
func listenPorts(ports []Port) (*publisher, error) {
	p := &publisher{ports: append([]Port(nil), ports...), conns: map[net.Conn]struct{}{}}
	for i, port := range ports {
		addr := net.JoinHostPort(port.HostIP, strconv.Itoa(port.HostPort))
		var l net.Listener
		var pc net.PacketConn
		var err error
		if port.Proto == "udp" {
			pc, err = net.ListenPacket("udp", addr)
		} else {
			l, err = net.Listen("tcp", addr)
		}
		if err != nil {
			p.close()
			var se *os.SyscallError
			if errors.As(err, &se) {
				err = se.Err
			}
			if errors.Is(err, unix.EADDRINUSE) {
				return nil, fmt.Errorf("publish %s: the host port %d/%s is already taken (address already in use)", port, port.HostPort, port.Protocol())
			}
			return nil, fmt.Errorf("publish %s: %w", port, err)
		}
		p.listeners, p.packets = append(p.listeners, l), append(p.packets, pc)
		if port.HostPort == 0 && l != nil {
			p.ports[i].HostPort = l.Addr().(*net.TCPAddr).Port
		} else if port.HostPort == 0 {
			p.ports[i].HostPort = pc.LocalAddr().(*net.UDPAddr).Port
		}
	}
	return p, nil
}

// serve starts relaying to the container whose init is pid.
func (p *publisher) serve(pid int) error {
	if len(p.listeners) == 0 {
		return nil
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return fmt.Errorf("publish: the container's network: %w", err)
	}
	p.netns, p.pid = ns, pid
	for i, l := range p.listeners {
		p.wg.Add(1)
		if l == nil {
			go p.relayUDP(p.packets[i], p.ports[i].ContainerPort)
		} else {
			go p.accept(l, p.ports[i].ContainerPort)
		}
	}
	return nil
}

// accept relays each connection to l until l is closed.
func (p *publisher) accept(l net.Listener, port int) {
	defer p.wg.Done()
	for {
		c, err := l.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(50 * time.Millisecond) // out of descriptors, say: later
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(c, port)
		}()
	}
}

// relay copies between a host connection and the container's port, each
// way until that side is done.
func (p *publisher) relay(c net.Conn, port int) {
	in, err := p.dial(port)
	if err != nil {
		c.Close() // as Docker: the client sees the connection closed
		return
	}
	if !p.track(c, in) {
		return
	}
	defer p.untrack(c, in)
	done := make(chan struct{}, 2)
	half := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go half(in, c)
	go half(c, in)
	<-done
	<-done
}

// dial connects to 127.0.0.1:port in the container's network namespace:
// the socket is made by a thread that has entered the namespace and goes
// back right after; the socket stays in the container's namespace.
func (p *publisher) dial(port int) (net.Conn, error) {
	return p.dialProto(port, unix.SOCK_STREAM)
}

// dialProto is dial for a socket of type typ: SOCK_STREAM or SOCK_DGRAM.
func (p *publisher) dialProto(port, typ int) (net.Conn, error) {
	fd, err := -1, error(unix.EPERM)
	if !p.stuck.Load() {
		var back bool
		fd, back, err = socketIn(p.netns, typ)
		if !back {
			p.stuck.Store(true)
		}
	}
	if err == unix.EPERM {
		fd, err = p.helperSocket(typ)
	}
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "container")
	defer f.Close()
	return net.FileConn(f)
}

// socketIn makes a socket of type typ in network namespace ns. back is
// false when the thread could not return to its own namespace (rootless:
// privileged over the container's namespace, not over the host's); the
// thread then ends with its goroutine, and the next sockets are better
// made by the helper.
func socketIn(ns *os.File, typ int) (fd int, back bool, err error) {
	type result struct {
		fd   int
		back bool
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, true, err}
			return
		}
		defer self.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, true, err}
			return
		}
		fd, serr := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
		back := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil
		if back {
			runtime.UnlockOSThread()
		} // else the thread, still in the container's namespace, ends with this goroutine
		ch <- result{fd, back, serr}
	}()
	r := <-ch
	return r.fd, r.back, r.err
}

// helperSocket gets a socket from the socket helper, started on first use.
func (p *publisher) helperSocket(typ int) (int, error) {
	p.mu.Lock()
	if p.helper == nil && p.helperErr == nil {
		p.helper, p.helperErr = startSocketHelper(p.pid)
	}
	h, err := p.helper, p.helperErr
	p.mu.Unlock()
	if err != nil {
		return -1, err
	}
	fd, err := h.socket(typ)
	if err != nil {
		// A helper that died is started again for the next connection.
		p.mu.Lock()
		if p.helper == h {
			p.helper = nil
		}
		p.mu.Unlock()
		h.stop()
	}
	return fd, err
}

// track records a relayed pair for close; false when closing already.
func (p *publisher) track(a, b net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		a.Close()
		b.Close()
		return false
	}
	p.conns[a], p.conns[b] = struct{}{}, struct{}{}
	return true
}

func (p *publisher) untrack(a, b net.Conn) {
	p.mu.Lock()
	if p.conns != nil {
		delete(p.conns, a)
		delete(p.conns, b)
	}
	p.mu.Unlock()
	a.Close()
	b.Close()
}

// close stops listening and ends the relayed connections.
func (p *publisher) close() {
	for i, l := range p.listeners {
		if l != nil {
			l.Close()
		} else {
			p.packets[i].Close()
		}
	}
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
	if p.netns != nil {
		p.netns.Close()
	}
	if p.helper != nil {
		p.helper.stop()
	}
}

// Without root, setns(2) into the container's network namespace is
// refused: it takes CAP_SYS_ADMIN in the caller's own user namespace too.
// Sockets then come from a helper started in the container's user and
// network namespaces (nsenter, as exec does): the same binary, which
// makes a socket for every byte it reads on its socket (0: TCP, 1: UDP)
// and sends it back (SCM_RIGHTS). A socket keeps the namespace it was
// made in.

// runSocketHelper is the main function of the reexec.SocketHelper role: it
// serves socket requests on its request socket, fd 3, until it is closed.
func runSocketHelper() int {
	conn := 3
	buf := make([]byte, 1)
	for {
		n, err := unix.Read(conn, buf)
		if n <= 0 || err != nil {
			return 0
		}
		typ := unix.SOCK_STREAM
		if buf[0] == 1 {
			typ = unix.SOCK_DGRAM
		}
		fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			unix.Write(conn, []byte{1})
			continue
		}
		err = unix.Sendmsg(conn, []byte{0}, unix.UnixRights(fd), nil, 0)
		unix.Close(fd)
		if err != nil {
			return 1
		}
	}
}

// socketHelper is a running helper and the parent's end of its socket.
type socketHelper struct {
	mu   sync.Mutex
	sock *os.File
	cmd  *exec.Cmd
}

// startSocketHelper starts a helper in the namespaces of process pid.
func startSocketHelper(pid int) (*socketHelper, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	parent, child := os.NewFile(uintptr(pair[0]), "helper"), os.NewFile(uintptr(pair[1]), "helper")
	defer child.Close()
	args := []string{"--target", strconv.Itoa(pid), "--net"}
	if !sameUserNS(pid) {
		// nsenter fails (EINVAL) to enter the user namespace it is in:
		// with subordinate ids, the container shares the monitor's.
		args = append(args, "--user", "--preserve-credentials")
	}
	cmd := exec.Command("nsenter", append(args, "--", exe)...)
	cmd.Env = append(os.Environ(), reexec.Env(reexec.SocketHelper))
	cmd.ExtraFiles = []*os.File{child}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	onSpawnThread(func() { err = cmd.Start() }) // it dies with its parent thread
	if err != nil {
		parent.Close()
		return nil, err
	}
	return &socketHelper{sock: parent, cmd: cmd}, nil
}

// sameUserNS reports whether process pid is in this process's user
// namespace.
func sameUserNS(pid int) bool {
	var self, other unix.Stat_t
	if unix.Stat("/proc/self/ns/user", &self) != nil || unix.Stat(fmt.Sprintf("/proc/%d/ns/user", pid), &other) != nil {
		return false
	}
	return self.Ino == other.Ino && self.Dev == other.Dev
}

// socket asks the helper for one socket of type typ.
func (h *socketHelper) socket(typ int) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	req := byte(0)
	if typ == unix.SOCK_DGRAM {
		req = 1
	}
	if _, err := h.sock.Write([]byte{req}); err != nil {
		return -1, err
	}
	f, err := receiveFile(h.sock)
	if err != nil {
		return -1, err
	}
	if f == nil {
		return -1, errors.New("the socket helper made no socket")
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err == nil {
		unix.CloseOnExec(fd)
	}
	return fd, err
}

// stop ends the helper.
func (h *socketHelper) stop() {
	h.sock.Close() // it exits when its socket closes
	h.cmd.Wait()
}
