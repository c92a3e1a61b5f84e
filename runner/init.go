package runner

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/creack/pty"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/unionfuse/unionfuse/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// The container's init is this binary in the reexec.ContainerInit role; it
// reads its initSpec from specFD and reports an error before the exec on
// errFD (close-on-exec: EOF there means the command runs).
const (
	specFD = 3
	errFD  = 4
	ttyFD  = 5 // with TTY: a socket to send the terminal's master on
)

// initSpec is what the monitor tells the init.
type initSpec struct {
	Rootfs   string
	Config   Config
	Rootless bool
	// Files are host files bind-mounted over paths of the root
	// (/etc/hostname, /etc/hosts, /etc/resolv.conf).
	Files map[string]string
	// TerminalSize, with TTY, is the size the terminal has before the
	// command starts (the caller's terminal's); nil leaves it 0x0.
	TerminalSize *pty.Winsize `json:",omitempty"`
}

// initError is what the init writes to errFD: the exit status the monitor
// should report (ExitNotFound for a command not found, as Docker) and a
// message.
type initError struct {
	Code    int
	Message string
}

// InitSuffix names the small binary that runs the init role: the CLI's
// path with this suffix (unionfuse-init beside unionfuse,
// cmd/unionfuse-init). When it is missing the CLI itself is the init.
const InitSuffix = "-init"

// runInit is the main function of the container's init. It returns only
// on error (with the exit status), having reported the error to the
// monitor.
func runInit() int {
	errPipe := os.NewFile(errFD, "errors")
	syscall.CloseOnExec(errFD)
	fail := func(code int, format string, args ...any) int {
		json.NewEncoder(errPipe).Encode(initError{Code: code, Message: fmt.Sprintf(format, args...)})
		return code
	}
	var spec initSpec
	specPipe := os.NewFile(specFD, "spec")
	if err := json.NewDecoder(specPipe).Decode(&spec); err != nil {
		return fail(ExitUnionfuseFailed, "container init: read spec: %v", err)
	}
	specPipe.Close()
	if err := setupRoot(&spec); err != nil {
		return fail(ExitUnionfuseFailed, "container init: %v", err)
	}
	if err := enterRoot(spec.Rootfs); err != nil {
		return fail(ExitUnionfuseFailed, "container init: %v", err)
	}
	if spec.Config.Network == "none" {
		// Best effort: a process without loopback still runs.
		loopbackUp()
	}
	if spec.Config.TTY {
		if err := makeTerminal(spec.TerminalSize); err != nil {
			return fail(ExitUnionfuseFailed, "container init: terminal: %v", err)
		}
	}
	return execCommand(spec, fail)
}

// setupRoot mounts what the container sees besides its layers. Every
// target is resolved inside the root (symbolic links in the container's
// layers cannot point the mounts at the host).
func setupRoot(spec *initSpec) error {
	root := spec.Rootfs
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind the root: %w", err)
	}
	if err := mountIn(root, "/proc", "proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	if err := setupDev(root, spec.Rootless, spec.Config.Security.ShmSize); err != nil {
		return err
	}
	if err := makeDevices(root, spec); err != nil {
		return err
	}
	setupSys(root, spec.Config.Security.Privileged)
	if !spec.Config.Security.Privileged {
		if err := confinePaths(root); err != nil {
			return err
		}
	}
	for dst, src := range spec.Files {
		if err := bindIn(root, src, dst, false); err != nil {
			return err
		}
	}
	for _, v := range spec.Config.Volumes {
		if v.Kind() == MountTmpfs {
			flags, data := tmpfsFlags(v.Options, v.ReadOnly)
			if err := mountIn(root, v.Dest, "tmpfs", "tmpfs", flags, data); err != nil {
				return fmt.Errorf("tmpfs %s: %w", v.Dest, err)
			}
			continue
		}
		if err := bindIn(root, v.Source, v.Dest, v.ReadOnly); err != nil {
			return fmt.Errorf("volume %s:%s: %w", v.Source, v.Dest, err)
		}
	}
	if spec.Config.ReadOnly {
		// The working directory is made while the root can still be
		// written (docker run --read-only -w /new works).
		if _, err := resolveIn(root, spec.Config.WorkDir, false); err != nil {
			return fmt.Errorf("working directory %s: %w", spec.Config.WorkDir, err)
		}
		if err := remountReadOnly(root); err != nil {
			return fmt.Errorf("read-only root: %w", err)
		}
	}
	if err := unix.Sethostname([]byte(spec.Config.Hostname)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	return nil
}

// resolveIn returns path resolved inside root, creating it (a directory,
// or an empty file when file) when it is missing.
func resolveIn(root, path string, file bool) (string, error) {
	p, err := securejoin.SecureJoin(root, path)
	if err != nil {
		return "", fmt.Errorf("resolve %s in the container: %w", path, err)
	}
	if _, err := os.Lstat(p); err == nil {
		return p, nil
	}
	if file {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return "", err
		}
		f.Close()
		return p, nil
	}
	return p, os.MkdirAll(p, 0o755)
}

// mountIn mounts a filesystem at path inside root.
func mountIn(root, path, source, fstype string, flags uintptr, data string) error {
	target, err := resolveIn(root, path, false)
	if err != nil {
		return err
	}
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, path, err)
	}
	return nil
}

// bindIn bind-mounts the host's src at path inside root.
func bindIn(root, src, path string, readOnly bool) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	target, err := resolveIn(root, path, !fi.IsDir())
	if err != nil {
		return err
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", src, path, err)
	}
	if !readOnly {
		return nil
	}
	// Every mount the recursive bind brought along turns read-only too,
	// not only the top one.
	for _, m := range mountsBelow(target) {
		if err := remountReadOnly(m); err != nil {
			return err
		}
	}
	return nil
}

// mountsBelow returns target and the mount points below it, parents
// first.
func mountsBelow(target string) []string {
	below, _ := mountinfo.Below(target)
	return append([]string{target}, below...)
}

// remountReadOnly makes the bind mount at target read-only, keeping the
// flags a user namespace may not clear.
func remountReadOnly(target string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return err
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
	for _, f := range []struct{ st, ms int64 }{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_RELATIME, unix.MS_RELATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME},
	} {
		if st.Flags&f.st != 0 {
			flags |= uintptr(f.ms)
		}
	}
	return unix.Mount("", target, "", flags, "")
}

// devices are bind-mounted from the host's /dev (mknod is not allowed in
// a user namespace, and a bind works the same as root).
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// setupDev mounts a minimal /dev: a tmpfs with the usual devices, a
// private devpts, /dev/shm (shmSize bytes, 0 for docker's 64 MiB) and the
// /proc/self/fd links.
func setupDev(root string, rootless bool, shmSize int64) error {
	if err := mountIn(root, "/dev", "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return err
	}
	dev, err := resolveIn(root, "/dev", false)
	if err != nil {
		return err
	}
	for _, d := range devices {
		target := filepath.Join(dev, d)
		if err := os.WriteFile(target, nil, 0o666); err != nil {
			return err
		}
		if err := unix.Mount("/dev/"+d, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", d, err)
		}
	}
	ptsOpts := "newinstance,ptmxmode=0666,mode=0620"
	if !rootless {
		ptsOpts += ",gid=5"
	}
	if err := mountIn(root, "/dev/pts", "devpts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, ptsOpts); err != nil {
		return err
	}
	if shmSize <= 0 {
		shmSize = defaultShmSize
	}
	if err := mountIn(root, "/dev/shm", "shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, fmt.Sprintf("mode=1777,size=%d", shmSize)); err != nil {
		return err
	}
	for name, target := range map[string]string{
		"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2", "core": "/proc/kcore",
	} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	return nil
}

// setupSys mounts /sys read-only (writable when privileged): a fresh
// sysfs where the kernel allows it, else a read-only bind of the host's,
// else nothing.
func setupSys(root string, privileged bool) {
	target, err := resolveIn(root, "/sys", false)
	if err != nil {
		return
	}
	ro := uintptr(unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if privileged {
		ro &^= unix.MS_RDONLY
	}
	if unix.Mount("sysfs", target, "sysfs", ro, "") == nil {
		return
	}
	if unix.Mount("/sys", target, "", unix.MS_BIND|unix.MS_REC, "") == nil {
		remountReadOnly(target)
	}
}

// enterRoot makes root the process's / (pivot_root, the old root
// detached).
func enterRoot(root string) error {
	if err := os.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the old root: %w", err)
	}
	return os.Chdir("/")
}

// loopbackUp sets the flag IFF_UP on lo.
func loopbackUp() {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return
	}
	if unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr) != nil {
		return
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// execCommand takes the container's user and working directory and execs
// its command. It returns only on error.
func execCommand(spec initSpec, fail func(int, string, ...any) int) int {
	cfg := spec.Config
	u, err := lookupUser(cfg.User)
	if err != nil {
		return fail(ExitUnionfuseFailed, "%v", err)
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return fail(ExitUnionfuseFailed, "working directory %s: %v", cfg.WorkDir, err)
	}
	env := cfg.Env
	if !hasEnv(env, "HOME") {
		env = append(env, "HOME="+u.Home)
	}
	if !hasEnv(env, "HOSTNAME") {
		env = append(env, "HOSTNAME="+cfg.Hostname)
	}
	if cfg.TTY && !hasEnv(env, "TERM") {
		env = append(env, "TERM=xterm")
	}
	sec := cfg.Security
	caps := sec.capabilities()
	if err := setUlimits(sec.Ulimits); err != nil {
		return fail(ExitUnionfuseFailed, "%v", err)
	}
	if err := dropBoundingCaps(caps); err != nil {
		return fail(ExitUnionfuseFailed, "%v", err)
	}
	if err := loadSeccomp(sec); err != nil {
		return fail(ExitUnionfuseFailed, "%v", err)
	}
	if err := u.become(spec.Rootless); err != nil {
		return fail(ExitUnionfuseFailed, "%v", err)
	}
	if u.Uid == 0 {
		if err := limitCaps(caps); err != nil {
			return fail(ExitUnionfuseFailed, "%v", err)
		}
	}
	if sec.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fail(ExitUnionfuseFailed, "no-new-privileges: %v", err)
		}
	}
	// Changing credentials cleared the parent-death signal: set it again,
	// and make sure the monitor has not died in between.
	unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	if os.Getppid() == 1 {
		return fail(ExitUnionfuseFailed, "the container's monitor has exited")
	}
	if err := os.Chdir(cfg.WorkDir); err != nil {
		return fail(ExitUnionfuseFailed, "working directory %s: %v", cfg.WorkDir, err)
	}
	path, code, err := lookPath(cfg.Args[0], env)
	if err != nil {
		return fail(code, "%v", err)
	}
	if cfg.Init {
		return reapAs1(path, cfg.Args, env, fail)
	}
	err = syscall.Exec(path, cfg.Args, env)
	return fail(ExitCannotInvoke, "exec %q: %v", cfg.Args[0], err)
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

// lookPath finds name in the container's PATH as a shell would, with
// Docker's messages and exit statuses (ExitNotFound, ExitCannotInvoke).
func lookPath(name string, env []string) (string, int, error) {
	if strings.Contains(name, "/") {
		if err := checkExecutable(name); err != nil {
			if os.IsNotExist(err) {
				return "", ExitNotFound, fmt.Errorf("exec: %q: no such file or directory", name)
			}
			return "", ExitCannotInvoke, err
		}
		return name, 0, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			if checkExecutable(p) == nil {
				return p, 0, nil
			}
		}
	}
	return "", ExitNotFound, fmt.Errorf("exec: %q: executable file not found in $PATH", name)
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("exec: %q: is a directory", p)
	}
	if unix.Access(p, unix.X_OK) != nil {
		return fmt.Errorf("exec: %q: permission denied", p)
	}
	return nil
}
