package unionserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/unionfuse/unionfuse/fs"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/reexec"
)

// BinaryName is the program a Client starts in the server role: the small
// serving binary, which links only the filesystem.
const BinaryName = "unionfuse-fuse"

// requestTimeout bounds one request: a mount takes milliseconds.
const requestTimeout = 30 * time.Second

// Client asks the union server of one root for mounts (unmounting needs
// no server: Detach), starting it when
// none listens. Its methods are safe for concurrent use; requests go one
// at a time on one connection.
type Client struct {
	root, socket, logFile, binary string

	mu   sync.Mutex
	conn net.Conn
	enc  *json.Encoder
	dec  *json.Decoder
}

// NewClient returns a client of the server for the unions under root
// (an absolute path), which logs to logFile and is started from binary
// (see Binary) when it is not running.
func NewClient(root, logFile, binary string) *Client {
	return &Client{root: root, socket: SocketPath(root), logFile: logFile, binary: binary}
}

// Binary returns the program to start servers from: BinaryName beside
// this program, else on PATH. Not this program itself, even when it
// has the role: a program whose main does not run reexec.Run first (a
// test binary) would start over as a whole.
func Binary() (string, error) {
	exe, err := os.Executable()
	if err == nil {
		p := filepath.Join(filepath.Dir(exe), BinaryName)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath(BinaryName); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s is not installed beside %s nor on PATH", BinaryName, exe)
}

// Mount has the server mount cfg at merged (below the client's root),
// unless it serves a union there already; whatever else is mounted there
// is taken for a dead server's union and detached first. For the client
// that owns the root's mountpoints (the snapshotter).
func (c *Client) Mount(merged string, cfg fs.Config) error {
	return c.mount(merged, cfg, false)
}

// MountNew has the server mount cfg at merged (below the client's root),
// where nothing may be mounted yet, as a daemon would: for a root shared
// with other mounts (the command line's -o server=).
func (c *Client) MountNew(merged string, cfg fs.Config) error {
	return c.mount(merged, cfg, true)
}

// mount sends a mount request, without what does not pass (see request).
func (c *Client) mount(merged string, cfg fs.Config, isNew bool) error {
	cfg.Logger, cfg.OnIdle, cfg.Fetchers = nil, nil, nil
	return c.do(request{Op: opMount, Merged: merged, Config: cfg, New: isNew})
}

// Close hangs up. The server goes on serving its unions, and exits once
// it serves none and no client is connected.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hangUp()
	return nil
}

// do sends req and waits for its answer. A connection that breaks (a
// server that stopped or died) is made again, with a new server if need
// be, and the request sent again: a mount may be asked for twice.
func (c *Client) do(req request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if c.conn == nil {
			if err := c.connect(); err != nil {
				return err
			}
		}
		c.conn.SetDeadline(time.Now().Add(requestTimeout))
		var resp response
		err := c.enc.Encode(req)
		if err == nil {
			err = c.dec.Decode(&resp)
		}
		if err != nil {
			c.hangUp()
			lastErr = err
			continue
		}
		if resp.Error != "" {
			return errors.New(resp.Error)
		}
		return nil
	}
	return fmt.Errorf("union server: %w", lastErr)
}

// connect connects to the server, starting one when none listens. A
// server that is stopping holds its lock until it has stopped listening,
// so the one started meanwhile leaves the root to it: then try again.
func (c *Client) connect() error {
	conn, err := net.Dial("unix", c.socket)
	for attempt := 0; err != nil && attempt < 3; attempt++ {
		if attempt > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		if err := c.start(); err != nil {
			return err
		}
		conn, err = net.Dial("unix", c.socket)
	}
	if err != nil {
		return fmt.Errorf("union server: %w", err)
	}
	// Whoever answers there is trusted with this user's unions: it must
	// be this user.
	if err := checkPeer(conn); err != nil {
		conn.Close()
		return err
	}
	c.conn, c.enc, c.dec = conn, json.NewEncoder(conn), json.NewDecoder(conn)
	return nil
}

// logName names where a server started by c logs, for messages.
func (c *Client) logName() string {
	if c.logFile == "" {
		return "its log (syslog, else " + daemon.DefaultLogFile() + ")"
	}
	return c.logFile
}

// hangUp closes the connection.
func (c *Client) hangUp() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.enc, c.dec = nil, nil, nil
	}
}

// start starts a server in a session of its own (it outlives this
// process) and waits until it listens or has failed.
func (c *Client) start() error {
	if c.binary == "" {
		return errors.New("union server: no program to start it from")
	}
	daemon.CloseInheritedOnExec()
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start union server: %w", err)
	}
	defer r.Close()
	cmd := reexec.Command(reexec.UnionServer, BinaryName, os.Environ(), c.root, c.socket, c.logFile)
	cmd.Path = c.binary
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{w} // daemon.ReadyFD
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("start union server: %w", err)
	}
	// Reaped when it exits, which may be long after this call.
	go cmd.Wait()
	err = daemon.AwaitReport(r)
	if errors.Is(err, daemon.ErrNoReport) {
		return fmt.Errorf("union server exited before it listened; see %s", c.logName())
	}
	return err
}
