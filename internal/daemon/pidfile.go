package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// systemRoot reports whether this process may use the system's runtime and
// log directories: root, and not merely root of a user namespace (which
// cannot write to /run).
func systemRoot() bool {
	return os.Geteuid() == 0 && unix.Access("/run", unix.W_OK) == nil
}

// PidDir returns the directory holding the pid files of this user's mounts.
func PidDir() string {
	if systemRoot() {
		return "/run/unionfuse"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "unionfuse")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("unionfuse-%d", os.Geteuid()))
}

// PidDirWithin reports whether PidDir is dir (a resolved mountpoint) or
// below it, as when a union is mounted over /run or /tmp: the union would
// hide the pid files and the union servers' sockets.
func PidDirWithin(dir string) bool {
	p, err := ResolveMountpoint(PidDir())
	if err != nil {
		p = filepath.Clean(PidDir())
	}
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// Record is what a pid file holds: the daemon serving one mountpoint.
type Record struct {
	// PID is the daemon's process ID.
	PID int
	// Start is the process's start time in clock ticks since boot
	// (/proc/PID/stat field 22), so a recycled PID is not mistaken for it.
	Start uint64
	// Merged is the mountpoint, absolute and symlink-resolved.
	Merged string
}

// pidFile returns the pid file path for a resolved mountpoint.
func pidFile(merged string) string {
	sum := sha256.Sum256([]byte(merged))
	return filepath.Join(PidDir(), hex.EncodeToString(sum[:8])+".pid")
}

// ResolveMountpoint returns merged absolute with symlinks resolved in its
// parent directories. The last component is not followed, so a mountpoint
// whose server has died (ENOTCONN) still resolves.
func ResolveMountpoint(merged string) (string, error) {
	abs, err := filepath.Abs(merged)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", merged, err)
	}
	if abs == "/" {
		return abs, nil
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", merged, err)
	}
	p := filepath.Join(dir, filepath.Base(abs))
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return real, nil
		}
	}
	return p, nil
}

// WritePid records this process as the daemon of merged (resolved).
func WritePid(merged string) error {
	start, err := startTime(os.Getpid())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(PidDir(), 0o700); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	data := fmt.Sprintf("%d %d\n%s\n", os.Getpid(), start, merged)
	// Atomic, not durable: a pid file is meaningless after a crash, and
	// the fsyncs cost more than a millisecond of every mount's start.
	if err := atomicfile.Replace(pidFile(merged), []byte(data), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// RemovePid removes the pid file of merged if it names this process.
func RemovePid(merged string) {
	if r, err := ReadPid(merged); err == nil && r.PID == os.Getpid() {
		os.Remove(pidFile(merged))
	}
}

// ReadPid returns the record of the daemon serving merged (resolved). It
// returns an error wrapping os.ErrNotExist when there is none.
func ReadPid(merged string) (Record, error) {
	data, err := os.ReadFile(pidFile(merged))
	if err != nil {
		return Record{}, fmt.Errorf("pid file of %s: %w", merged, err)
	}
	var r Record
	first, rest, _ := strings.Cut(string(data), "\n")
	r.Merged = strings.TrimSuffix(rest, "\n")
	if _, err := fmt.Sscanf(first, "%d %d", &r.PID, &r.Start); err != nil || r.Merged != merged {
		return Record{}, fmt.Errorf("pid file of %s: malformed", merged)
	}
	return r, nil
}

// Alive reports whether the process recorded in r is still running.
func (r Record) Alive() bool {
	start, err := startTime(r.PID)
	return err == nil && start == r.Start
}

// startTime returns field 22 of /proc/PID/stat: when the process started.
// A zombie counts as exited.
func startTime(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return 0, unix.ESRCH
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// StartTime returns when process pid started, in clock ticks since boot,
// as Record.Start holds it.
func StartTime(pid int) (uint64, error) { return startTime(pid) }
