package runner

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/reexec"
	"github.com/unionfuse/unionfuse/internal/usernsref"
)

// A detached container's monitor is this binary in the reexec.Monitor
// role, with envMonitor = "<store root>\n<container id>"; it tells its
// starter on readyFD "ok" once the command runs, or "error: <code>
// <message>".
const (
	envMonitor = "UNIONFUSE_CONTAINER_MONITOR"
	readyFD    = 3
)

// StartDetached starts the container in a monitor process of its own
// (a new session, the command's output in its log, the monitor's own
// in monitor.log) and returns once the
// command runs, or with the reason it could not start.
func (r *Runner) StartDetached(c *Container) error {
	if !c.Running() {
		// Started by hand: its restart policy applies again, counted anew.
		allowRestarts(c)
		if c.State.RestartCount != 0 {
			c.State.RestartCount = 0
			c.saveState()
		}
	}
	logf, err := os.OpenFile(c.monitorLogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("container %s: monitor log: %w", c.ShortID(), err)
	}
	defer logf.Close()
	rd, wr, err := os.Pipe()
	if err != nil {
		return err
	}
	defer rd.Close()
	daemon.CloseInheritedOnExec() // the caller's pipes must not wait for the monitor
	cmd := reexec.Command(reexec.Monitor, "unionfuse-monitor", append(os.Environ(), envMonitor+"="+r.store.Root()+"\n"+c.ID))
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{wr}
	usernsref.Pass(cmd) // the monitor holds a rootless namespace while the container lives
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	wr.Close()
	if err != nil {
		return fmt.Errorf("container %s: start monitor: %w", c.ShortID(), err)
	}
	line, _ := bufio.NewReader(rd).ReadString('\n')
	line = strings.TrimSuffix(line, "\n")
	if line == "ok" {
		return cmd.Process.Release()
	}
	cmd.Wait()
	if msg, ok := strings.CutPrefix(line, "error: "); ok {
		var code int
		if n, _ := fmt.Sscanf(msg, "%d ", &code); n == 1 {
			_, msg, _ = strings.Cut(msg, " ")
			return &ExitError{Code: code, Message: msg}
		}
		return errors.New(msg)
	}
	return fmt.Errorf("container %s: its monitor exited before the container started; see %s", c.ShortID(), c.monitorLogPath())
}

// runMonitor is the main function of a detached container's monitor: it
// runs the container (its output goes to its log alone) and returns the
// exit status. As the main function of its process it catches the
// signals meant for the container (a signal sent to the monitor reaches
// the command) and prints warnings to its stderr, monitor.log.
func runMonitor() int {
	ready := os.NewFile(readyFD, "ready")
	syscall.CloseOnExec(readyFD)
	report := func(msg string) {
		if ready != nil {
			fmt.Fprintln(ready, msg)
			ready.Close()
			ready = nil
		}
	}
	root, id, _ := strings.Cut(os.Getenv(envMonitor), "\n")
	os.Unsetenv(envMonitor)
	s, err := cowcache.Open(root)
	if err != nil {
		report(fmt.Sprintf("error: %d %v", ExitUnionfuseFailed, err))
		return ExitUnionfuseFailed
	}
	defer s.Close()
	r := New(s)
	c, err := r.loadContainer(id)
	if err != nil {
		report(fmt.Sprintf("error: %d %v", ExitUnionfuseFailed, err))
		return ExitUnionfuseFailed
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, ForwardedSignals()...)
	warn := func(err error) { fmt.Fprintf(os.Stderr, "unionfuse: warning: %v\n", err) }
	stdio := IO{Signals: signals, Warn: warn}
	if c.Config.Interactive {
		// docker run -di keeps the command's stdin open: a FIFO that
		// `unionfuse attach` writes to, open (for writing too, so never
		// at its end) as long as the monitor runs.
		if f, err := openStdinFIFO(c); err == nil {
			defer f.Close()
			stdio.Stdin = f
		}
	}
	code, err := r.runRestarting(c, stdio, func(err error) {
		if err != nil {
			report(fmt.Sprintf("error: %d %s", exitCodeOf(err), strings.ReplaceAll(err.Error(), "\n", " ")))
			return
		}
		report("ok")
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "unionfuse:", err)
	}
	return code
}

// monitorLogPath returns where a detached container's monitor writes its
// own messages.
func (c *Container) monitorLogPath() string { return filepath.Join(c.dir, "monitor.log") }
