package runner

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParsePort(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{in: "8080:80", want: "0.0.0.0:8080->80/tcp"},
		{in: "8080:80/tcp", want: "0.0.0.0:8080->80/tcp"},
		{in: "127.0.0.1:8080:80", want: "127.0.0.1:8080->80/tcp"},
		{in: "[::1]:8080:80", want: "[::1]:8080->80/tcp"},
		{in: "80", want: "0.0.0.0:0->80/tcp"},
		{in: "127.0.0.1::80", want: "127.0.0.1:0->80/tcp"},
		{in: "", err: "container port"},
		{in: "8053:53/udp", want: "0.0.0.0:8053->53/udp"},
		{in: "8053:53/sctp", err: "only tcp and udp"},
		{in: "x:80", err: "host port"},
		{in: "8080:0", err: "container port"},
		{in: "70000:80", err: "host port"},
		{in: "host:8080:80", err: "not an IP address"},
	} {
		p, err := parsePort(c.in)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("parsePort(%q) = %v, %v; want an error with %q", c.in, p, err, c.err)
		case c.err == "" && (err != nil || p.String() != c.want):
			t.Errorf("parsePort(%q) = %v, %v; want %s", c.in, p, err, c.want)
		}
	}
}

// A published UDP port relays a datagram and its reply; the container
// here is this process's own network namespace (entering it takes root).
func TestPublishUDP(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("entering a network namespace needs root")
	}
	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 100)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	p, err := listenPorts([]Port{{HostIP: "127.0.0.1", ContainerPort: echo.LocalAddr().(*net.UDPAddr).Port, Proto: "udp"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if err := p.serve(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := listenPorts(p.ports); err == nil || !strings.Contains(err.Error(), "already taken") {
		t.Errorf("a taken port published again: %v", err)
	}
	c, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.ports[0].HostPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hi"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "echo hi" {
		t.Errorf("read %q, %v", buf[:n], err)
	}
}
