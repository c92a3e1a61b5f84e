package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/creack/pty"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/reexec"
	"github.com/unionfuse/unionfuse/network"
	"golang.org/x/sys/unix"
)

// IO connects a container's command to its caller: its standard streams
// (a nil Stdin reads /dev/null; nil writers discard), the signals meant
// for it and the warnings about it.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Signals are the signals the caller catches for the command (see
	// ForwardedSignals): each is passed on to it once it runs, but
	// SIGWINCH, which gives its terminal the size of the caller's. Nil
	// passes none.
	Signals <-chan os.Signal
	// Warn, when not nil, is told what went wrong without failing the
	// run (a root that stayed busy and was detached lazily, a port that
	// could not be published).
	Warn func(error)
}

// warn tells stdio.Warn about err.
func (stdio IO) warn(err error) {
	if stdio.Warn != nil {
		stdio.Warn(err)
	}
}

// rootless reports whether containers run in a user namespace: whenever
// the caller is not root.
func rootless() bool { return os.Geteuid() != 0 }

// startInit starts the container's init in its new namespaces with stdio
// and returns once the command is exec'd, or with the init's error. With
// TTY the init makes a pseudo-terminal in the container's own devpts (so
// that the command's tty is one it can name) and the terminal's master is
// returned; stdio is then unused, and size (when not nil) is the
// terminal's size from the start.
//
// setup, when not nil, is called with the init's pid once its namespaces
// exist and before it reads its spec (the command waits for it): what
// the monitor sets up from outside, the network.
func startInit(c *Container, stdin io.Reader, stdout, stderr io.Writer, size *pty.Winsize, setup func(pid int) error) (*exec.Cmd, *os.File, error) {
	spec := initSpec{Rootfs: c.Rootfs(), Config: c.Config, Rootless: rootless(), Files: map[string]string{}, TerminalSize: size}
	for _, f := range []string{"hostname", "hosts", "resolv.conf"} {
		spec.Files["/etc/"+f] = filepath.Join(c.dir, f)
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer specR.Close()
	defer specW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer errR.Close()
	defer errW.Close()

	// Nothing this process inherited may reach the container.
	daemon.CloseInheritedOnExec()
	cmd := reexec.Command(reexec.ContainerInit, "unionfuse-init", nil)
	if small := reexec.Sibling(InitSuffix); small != "" {
		cmd.Path = small
	}
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.ExtraFiles = []*os.File{specR, errW} // fds 3 and 4: specFD, errFD
	var sock *os.File
	if c.Config.TTY {
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, nil, err
		}
		sock = os.NewFile(uintptr(pair[0]), "terminal")
		defer sock.Close()
		child := os.NewFile(uintptr(pair[1]), "terminal")
		defer child.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, child) // fd 5: ttyFD
		cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	}
	flags := unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC
	if c.Config.ownNetns() {
		flags |= unix.CLONE_NEWNET
	}
	attr := &syscall.SysProcAttr{
		Cloneflags: uintptr(flags),
		Pdeathsig:  syscall.SIGKILL, // the container dies with its monitor
		Setsid:     true,
	}
	if spec.Rootless {
		attr.Cloneflags |= unix.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	cmd.SysProcAttr = attr
	onSpawnThread(func() { err = network.InNamespaceOf(c.netnsPid, cmd.Start) })
	if err != nil {
		return nil, nil, &ExitError{Code: ExitUnionfuseFailed, Message: fmt.Sprintf("start container %s: %v", c.ShortID(), err)}
	}
	specR.Close()
	errW.Close()
	for _, f := range cmd.ExtraFiles[2:] {
		f.Close()
	}
	if setup != nil {
		if err := setup(cmd.Process.Pid); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, nil, &ExitError{Code: ExitUnionfuseFailed, Message: fmt.Sprintf("start container %s: %v", c.ShortID(), err)}
		}
	}
	err = json.NewEncoder(specW).Encode(spec)
	specW.Close()
	var master *os.File
	if err == nil && sock != nil {
		master, err = receiveFile(sock) // nil when the init failed first
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, nil, fmt.Errorf("start container %s: %w", c.ShortID(), err)
	}
	// EOF without a message: the init exec'd the command.
	var ie initError
	if derr := json.NewDecoder(errR).Decode(&ie); derr == nil {
		cmd.Wait()
		if master != nil {
			master.Close()
		}
		return nil, nil, &ExitError{Code: ie.Code, Message: ie.Message}
	} else if !errors.Is(derr, io.EOF) {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, nil, fmt.Errorf("start container %s: %w", c.ShortID(), derr)
	}
	if sock != nil && master == nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, nil, fmt.Errorf("start container %s: no terminal from its init", c.ShortID())
	}
	return cmd, master, nil
}

// writeEtcFiles writes the files bind-mounted over /etc/hostname,
// /etc/hosts and /etc/resolv.conf.
//
// On a network that keeps /etc/hosts (network.Bridge's), hosts has the
// localhost lines alone until the attach adds the network's section; a
// container sharing another's network namespace (joined, its dir) gets
// that one's hosts and resolv.conf.
func writeEtcFiles(c *Container, joined string) error {
	hosts := localhostLines
	if c.Config.Network == "host" {
		if b, err := os.ReadFile("/etc/hosts"); err == nil {
			hosts = string(b)
		}
	}
	if len(c.Config.Networks) == 0 {
		hosts += "127.0.1.1\t" + c.Config.Hostname + "\n" + extraHosts(c, netip.Addr{})
	}
	resolv := ""
	if c.Config.Network == "host" {
		if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
			resolv = string(b)
		}
	}
	if joined != "" {
		h, _ := os.ReadFile(filepath.Join(joined, "hosts"))
		r, _ := os.ReadFile(filepath.Join(joined, "resolv.conf"))
		hosts, resolv = string(h), string(r)
	}
	files := map[string]string{"hostname": c.Config.Hostname + "\n", "hosts": hosts, "resolv.conf": resolv}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(c.dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ParseSignal parses a signal name (TERM, SIGTERM, sigterm) or number.
func ParseSignal(s string) (syscall.Signal, error) {
	if s == "" {
		return syscall.SIGTERM, nil
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err == nil && fmt.Sprint(n) == s {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, fmt.Errorf("invalid signal %q", s)
	}
	return sig, nil
}
