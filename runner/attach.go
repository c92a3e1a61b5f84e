package runner

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// stdinFIFO is, in a container's directory, the FIFO a detached
// interactive container reads its stdin from.
const stdinFIFO = "stdin"

// openStdinFIFO makes (if need be) and opens c's stdin FIFO for reading
// and writing.
func openStdinFIFO(c *Container) (*os.File, error) {
	p := filepath.Join(c.dir, stdinFIFO)
	if err := unix.Mkfifo(p, 0o600); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, err
	}
	return os.OpenFile(p, os.O_RDWR, 0)
}

// Attach connects to a running container, as docker attach: what it
// writes from now on reaches stdout and stderr (from its log), stdin
// (when not nil and the container was created with -i) reaches its
// command, and Attach returns its exit status once it stops.
func (r *Runner) Attach(c *Container, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if !c.Running() {
		return ExitUnionfuseFailed, fmt.Errorf("You cannot attach to a stopped container, start it first")
	}
	if c.Paused() {
		return ExitUnionfuseFailed, errors.New("You cannot attach to a paused container, unpause it first")
	}
	if stdin != nil && c.Config.Interactive {
		f, err := os.OpenFile(filepath.Join(c.dir, stdinFIFO), os.O_WRONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return ExitUnionfuseFailed, fmt.Errorf("attach to %s: stdin: %w", c.ShortID(), err)
		}
		// Blocking again once open: the monitor holds the reading end.
		unix.SetNonblock(int(f.Fd()), false)
		defer f.Close()
		go io.Copy(f, stdin)
	}
	if err := r.Logs(c, stdout, stderr, LogOptions{Tail: 0, Follow: true}); err != nil {
		return ExitUnionfuseFailed, err
	}
	return r.Wait(c)
}
