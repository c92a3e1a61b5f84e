package daemon

import (
	"fmt"
	"io"
	"log"
	"log/syslog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// DefaultLogFile is the file a daemon logs to when there is no syslog
// socket (/dev/log) and no --log: /var/log/unionfuse.log for root, else
// $XDG_STATE_HOME/unionfuse/unionfuse.log (~/.local/state/unionfuse/...).
func DefaultLogFile() string {
	if systemRoot() {
		return "/var/log/unionfuse.log"
	}
	state := os.Getenv("XDG_STATE_HOME")
	if state == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		state = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(state, "unionfuse", "unionfuse.log")
}

// OpenLog returns the daemon's logger: the file path when it is not empty,
// else syslog when /dev/log exists, else DefaultLogFile (or, when that
// cannot be written, unionfuse.log in PidDir). When the log is a file it
// also becomes the process's stderr, so a crash is recorded too.
func OpenLog(path string) (*log.Logger, io.Closer, error) {
	if path != "" {
		return openLogFile(path)
	}
	if _, err := os.Stat("/dev/log"); err == nil {
		w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "unionfuse")
		if err == nil {
			return log.New(w, "", 0), w, nil
		}
	}
	logger, closer, err := openLogFile(DefaultLogFile())
	if err != nil {
		return openLogFile(filepath.Join(PidDir(), "unionfuse.log"))
	}
	return logger, closer, nil
}

// openLogFile opens path for appending, making its directory.
func openLogFile(path string) (*log.Logger, io.Closer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("open log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("open log: %w", err)
	}
	unix.Dup2(int(f.Fd()), 2)
	return log.New(f, fmt.Sprintf("unionfuse[%d]: ", os.Getpid()), log.LstdFlags), f, nil
}
