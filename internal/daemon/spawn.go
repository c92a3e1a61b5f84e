package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/unionfuse/unionfuse/fs"
	"github.com/unionfuse/unionfuse/internal/partial"
	"github.com/unionfuse/unionfuse/internal/reexec"
	"github.com/unionfuse/unionfuse/internal/usernsref"
)

// envSpec carries the daemon's Spec (JSON) from Start to runDaemon.
const envSpec = "UNIONFUSE_DAEMON_SPEC"

// Spec is what a daemon is asked to serve.
type Spec struct {
	// Merged is the mountpoint.
	Merged string
	// Config is the union; its Logger is not passed on (the daemon opens
	// its own, see OpenLog).
	Config fs.Config
	// LogFile is where the daemon logs; empty means syslog, or
	// DefaultLogFile when there is no syslog.
	LogFile string
	// CPUProfile and MemProfile, when set, are where the daemon writes a
	// CPU profile and a heap profile (see Profiles).
	CPUProfile, MemProfile string
}

// Start starts a daemon serving spec and returns once the union is
// visible at spec.Merged, or with the daemon's one-line error. The daemon
// is /proc/self/exe in a new session with stdin, stdout and stderr on
// /dev/null and "/" as its working directory, so relative paths in spec
// are made absolute here.
func Start(spec Spec) error {
	spec, err := Absolute(spec)
	if err != nil {
		return err
	}
	spec.Config.Logger = nil
	data, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	// Descriptors this process inherited (a caller's pipes) must not live
	// on in the daemon: whoever reads them would wait for it to exit.
	CloseInheritedOnExec()
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	defer r.Close()
	cmd := reexec.Command(reexec.Daemon, filepath.Base(os.Args[0]), append(os.Environ(), envSpec+"="+string(data)), "daemon", spec.Merged)
	// A union with partial (lazily pulled) layers is served by this
	// binary, whose Fetchers serve them, rather than by the small
	// helper, which has none.
	if helper := Helper(); helper != "" && !partial.Any(spec.Config.Lowers) {
		cmd.Path = helper
	}
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{w} // becomes ReadyFD
	usernsref.Pass(cmd)            // the daemon holds a rootless namespace while it serves
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	var reported *ReportError
	switch err := AwaitReport(r); {
	case err == nil:
		return cmd.Process.Release()
	case errors.As(err, &reported):
		cmd.Wait()
		return err
	case errors.Is(err, ErrNoReport):
		werr := cmd.Wait()
		return fmt.Errorf("daemon exited before the union was mounted (%v); see its log", werr)
	default:
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("daemon: %w", err)
	}
}

// HelperSuffix names the small binary that serves unions: the main
// binary's path with this suffix (unionfuse-fuse beside unionfuse). It
// links only what a daemon needs (fs/, go-fuse, this package), so it
// starts in about half the time of the whole CLI, whose registry, network
// and build packages cost milliseconds of package initialisation in every
// process.
const HelperSuffix = "-fuse"

// Helper returns the path of the small daemon binary beside this one
// (see HelperSuffix), or "" when there is none; Start then starts this
// binary itself in the daemon role. Both are built and installed together
// (make build, make install): the daemon's Spec passes between them.
func Helper() string { return reexec.Sibling(HelperSuffix) }

// CloseInheritedOnExec marks every descriptor above stderr close-on-exec,
// so that what this process inherited (a caller's pipes, files, sockets)
// does not live on in the processes it starts.
func CloseInheritedOnExec() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// Absolute returns spec with its paths (the mountpoint, layers, log and
// profiles) made absolute: a daemon or a union server runs in /.
func Absolute(spec Spec) (Spec, error) {
	abs := func(p string) (string, error) {
		if p == "" {
			return "", nil
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", p, err)
		}
		return a, nil
	}
	var err error
	c := &spec.Config
	c.Lowers = append([]string(nil), c.Lowers...)
	c.DataLowers = append([]string(nil), c.DataLowers...)
	for _, ls := range [][]string{c.Lowers, c.DataLowers} {
		for i := range ls {
			if ls[i], err = abs(ls[i]); err != nil {
				return spec, err
			}
		}
	}
	for _, p := range []*string{&spec.Merged, &c.Upper, &c.Work, &spec.LogFile, &spec.CPUProfile, &spec.MemProfile} {
		if *p, err = abs(*p); err != nil {
			return spec, err
		}
	}
	return spec, nil
}

func init() { reexec.Register(reexec.Daemon, runDaemon) }

// runDaemon is the main function of the daemon role (a process started by
// Start): it opens the log, mounts, tells the parent, serves until
// unmounted and returns the exit status.
func runDaemon() int {
	report := Reporter()
	var spec Spec
	err := json.Unmarshal([]byte(os.Getenv(envSpec)), &spec)
	os.Unsetenv(envSpec)
	if err != nil {
		report("error: daemon: bad spec: " + err.Error())
		return 1
	}
	logger, closer, err := OpenLog(spec.LogFile)
	if err != nil {
		report("error: " + err.Error())
		return 1
	}
	defer closer.Close()
	spec.Config.Logger = logger
	// As the main function of its process, the daemon catches the signals
	// that unmount its union.
	stop := make(chan os.Signal, 4)
	signal.Notify(stop, StopSignals()...)
	err = Serve(spec.Merged, spec.Config, Profiles{CPU: spec.CPUProfile, Mem: spec.MemProfile}, stop, func() { report("ok") })
	if err != nil {
		logger.Print(err)
		report("error: " + oneLine(err.Error()))
		return 1
	}
	return 0
}

// oneLine keeps the first line of msg.
func oneLine(msg string) string {
	first, _, _ := strings.Cut(strings.TrimSpace(msg), "\n")
	return first
}
