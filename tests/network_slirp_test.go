package tests

// run --network bridge without root, through slirp4netns: a container
// reaches a server on the host's loopback through 10.0.2.2, gets
// slirp4netns's resolver, and its slirp4netns process ends with it, on
// rm -f and when its monitor is killed.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// slirpPid returns the pid of container id's slirp4netns process as its
// record says, 0 without a record.
func slirpPid(t *testing.T, store, id string) int {
	b, err := os.ReadFile(filepath.Join(store, "containers", id, "slirp4netns.json"))
	if err != nil {
		return 0
	}
	var rec struct{ Pid int }
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.Pid
}

// isSlirp reports whether pid is a live slirp4netns process.
func isSlirp(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && strings.Contains(string(b), "(slirp4netns)") && !strings.Contains(string(b), ") Z ")
}

// checkSlirpWayOut checks that a container on network reaches a
// server on the host's loopback through 10.0.2.2 and has slirp4netns's
// resolver 10.0.2.3.
func checkSlirpWayOut(t *testing.T, e *containerEnv, network string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello from the host") })}
	go srv.Serve(l)
	defer srv.Close()
	url := fmt.Sprintf("http://10.0.2.2:%d/", l.Addr().(*net.TCPAddr).Port)
	expect(t, "wget 10.0.2.2", e.u("run", "--rm", "--network", network, "busybox", "wget", "-qO-", url), 0, "hello from the host", "")
	r := e.u("run", "--rm", "--network", network, "busybox", "cat", "/etc/resolv.conf")
	mustSucceed(t, "run", r)
	if !strings.Contains(r.stdout, "nameserver 10.0.2.3\n") {
		t.Errorf("no slirp4netns nameserver in:\n%s", r.stdout)
	}
}

// greeting returns what the server at addr says first (up to 64 bytes,
// within 2 seconds), "" when it cannot be reached.
func greeting(addr string) string {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 64)
	n, _ := c.Read(b)
	return string(b[:n])
}

// udpAnswer sends a datagram to addr and returns the first one back
// within a second, "" when none comes.
func udpAnswer(addr string) string {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return ""
	}
	b := make([]byte, 64)
	n, _ := c.Read(b)
	return string(b[:n])
}

// checkUDPPublished runs a container on network with a UDP port
// published on the host's loopback and a UDP echo server behind it
// (nettool, copied in: busybox's nc has no UDP), and checks that the
// host's datagram comes back.
func checkUDPPublished(t *testing.T, e *containerEnv, network string) {
	t.Helper()
	port := freePort(t) // free for TCP, and most likely for UDP too
	r := e.u("run", "-d", "--network", network, "-p", fmt.Sprintf("127.0.0.1:%d:9000/udp", port),
		"busybox", "sh", "-c", "until /tmp/nettool udpecho 9000; do sleep 0.2; done")
	mustSucceed(t, "run -d -p /udp", r)
	id := strings.TrimSpace(r.stdout)
	defer e.u("rm", "-f", id)
	mustSucceed(t, "cp nettool", e.u("cp", nettoolBinary(t), id+":/tmp/nettool"))
	waitFor(t, func() bool { return udpAnswer(fmt.Sprintf("127.0.0.1:%d", port)) == "ping\n" })
}

// nettoolBinary builds bench/network/nettool, static, once per test
// binary, into bin/ beside the unionfuse binary the tests run (which
// every user can reach).
func nettoolBinary(t *testing.T) string {
	t.Helper()
	nettool.Do(func() {
		dir, err := filepath.Abs(filepath.Join("..", "bin"))
		if err != nil {
			nettool.err = err
			return
		}
		path := filepath.Join(dir, "nettool-test")
		tmp := fmt.Sprintf("%s.%d", path, os.Getpid())
		cmd := exec.Command("go", "build", "-o", tmp, "../bench/network/nettool")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			nettool.err = fmt.Errorf("go build nettool: %v: %s", err, out)
			return
		}
		nettool.path, nettool.err = path, os.Rename(tmp, path)
	})
	if nettool.err != nil {
		t.Fatal(nettool.err)
	}
	return nettool.path
}

// nettool is nettoolBinary's build.
var nettool struct {
	sync.Once
	path string
	err  error
}

func TestNetworkSlirp(t *testing.T) {
	if _, err := exec.LookPath("slirp4netns"); err != nil {
		t.Skip("needs slirp4netns (make deps installs it)")
	}
	e := newContainerEnv(t, requireContainers(t, true, false))
	openToAll(t, "/dev/net/tun") // as Debian's udev rules have it

	t.Run("reaches the host's loopback through 10.0.2.2, resolver 10.0.2.3", func(t *testing.T) {
		checkSlirpWayOut(t, e, "bridge")
	})

	t.Run("publish", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		r := e.u("run", "-d", "--network", "bridge", "-p", fmt.Sprintf("127.0.0.1:%d:8080", port), "busybox", "sh", "-c",
			"while :; do echo hi from the container | nc -l -p 8080; done")
		mustSucceed(t, "run -d -p", r)
		id := strings.TrimSpace(r.stdout)
		defer e.u("rm", "-f", id)
		waitFor(t, func() bool { return greeting(fmt.Sprintf("127.0.0.1:%d", port)) == "hi from the container\n" })
	})

	t.Run("publish UDP", func(t *testing.T) { checkUDPPublished(t, e, "bridge") })

	t.Run("slirp4netns ends with the container", func(t *testing.T) {
		// rm -f of a running container.
		r := e.u("run", "-d", "--network", "bridge", "busybox", "sleep", "1000")
		mustSucceed(t, "run -d", r)
		id := strings.TrimSpace(r.stdout)
		pid := slirpPid(t, e.store, id)
		if pid == 0 || !isSlirp(pid) {
			t.Fatalf("no slirp4netns recorded for the running container %s (pid %d)", id[:12], pid)
		}
		mustSucceed(t, "rm -f", e.u("rm", "-f", id))
		waitFor(t, func() bool { return !isSlirp(pid) })

		// A killed monitor: slirp4netns goes too, and the next command
		// reaps.
		r = e.u("run", "-d", "--network", "bridge", "busybox", "sleep", "1000")
		mustSucceed(t, "run -d", r)
		id = strings.TrimSpace(r.stdout)
		pid = slirpPid(t, e.store, id)
		if pid == 0 || !isSlirp(pid) {
			t.Fatalf("no slirp4netns recorded for the running container %s (pid %d)", id[:12], pid)
		}
		syscall.Kill(parentOf(t, readState(t, e.store, id).Pid), syscall.SIGKILL)
		waitFor(t, func() bool { return strings.Contains(e.u("ps", "-a").stdout, "Exited (137)") })
		mustSucceed(t, "rm", e.u("rm", id))
		waitFor(t, func() bool { return !isSlirp(pid) })
	})
}
