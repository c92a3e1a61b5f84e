package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	units "github.com/docker/go-units"
	"golang.org/x/sys/unix"
)

// Security is what a container's root may do beyond the defaults of
// confine.go: docker run's --cap-add, --cap-drop, --privileged, --device,
// --security-opt, --ulimit and --shm-size.
type Security struct {
	CapAdd  []string `json:",omitempty"` // CHOWN or CAP_CHOWN; ALL
	CapDrop []string `json:",omitempty"`
	// Privileged: every capability, the host's devices, no seccomp
	// filter, /proc and /sys unmasked and writable.
	Privileged      bool     `json:",omitempty"`
	Devices         []Device `json:",omitempty"`
	NoNewPrivileges bool     `json:",omitempty"`
	// Seccomp is "" for docker's default profile, "unconfined" for no
	// filter, or a profile in docker's JSON format (the file's content,
	// read when the container is created, as docker keeps it).
	Seccomp string   `json:",omitempty"`
	Ulimits []Ulimit `json:",omitempty"`
	ShmSize int64    `json:",omitempty"` // bytes of /dev/shm; 0 = 64 MiB
}

// Device is a host device made in the container (--device).
type Device struct {
	Host, Container string
	// Perms are docker's r, w and m; the container's node is made
	// read-only without w.
	Perms string
}

// Ulimit is a resource limit set on the container's command (--ulimit);
// -1 is unlimited.
type Ulimit struct {
	Name       string
	Soft, Hard int64
}

// seccompUnconfined is the --security-opt seccomp= value for no filter.
const seccompUnconfined = "unconfined"

// defaultShmSize is the size of /dev/shm without --shm-size, docker's.
const defaultShmSize = 64 << 20

// ParseDevice parses --device HOST[:CONTAINER[:PERMS]].
func ParseDevice(s string) (Device, error) {
	parts := strings.Split(s, ":")
	d := Device{Host: parts[0], Container: parts[0], Perms: "rwm"}
	switch len(parts) {
	case 1:
	case 2:
		if isDevicePerms(parts[1]) {
			d.Perms = parts[1]
		} else {
			d.Container = parts[1]
		}
	case 3:
		d.Container, d.Perms = parts[1], parts[2]
	default:
		return d, fmt.Errorf("invalid device specification: %s", s)
	}
	if !isDevicePerms(d.Perms) {
		return d, fmt.Errorf("invalid device mode: %s", d.Perms)
	}
	if !filepath.IsAbs(d.Host) || !filepath.IsAbs(d.Container) {
		return d, fmt.Errorf("invalid device specification: %s: paths must be absolute", s)
	}
	return d, nil
}

func isDevicePerms(p string) bool {
	return p != "" && strings.Trim(p, "rwm") == ""
}

// ulimitNames are the resources --ulimit knows, docker's names.
var ulimitNames = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU, "data": unix.RLIMIT_DATA,
	"fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS, "memlock": unix.RLIMIT_MEMLOCK,
	"msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE, "nofile": unix.RLIMIT_NOFILE,
	"nproc": unix.RLIMIT_NPROC, "rss": unix.RLIMIT_RSS, "rtprio": unix.RLIMIT_RTPRIO,
	"rttime": unix.RLIMIT_RTTIME, "sigpending": unix.RLIMIT_SIGPENDING, "stack": unix.RLIMIT_STACK,
}

// ParseUlimit parses --ulimit NAME=SOFT[:HARD] (the parser of go-units,
// docker's).
func ParseUlimit(s string) (Ulimit, error) {
	u, err := units.ParseUlimit(s)
	if err != nil {
		return Ulimit{}, err
	}
	return Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard}, nil
}

// ApplySecurityOpt records one --security-opt: no-new-privileges[:true|
// false], seccomp=unconfined or seccomp=FILE (a profile in docker's JSON
// format). label= and apparmor= are refused: neither exists here.
func (s *Security) ApplySecurityOpt(opt string) error {
	key, value, hasValue := strings.Cut(opt, "=")
	if !hasValue {
		key, value, hasValue = strings.Cut(opt, ":")
	}
	switch key {
	case "no-new-privileges":
		if !hasValue {
			value = "true"
		}
		b, err := strconv.ParseBool(value)
		if err != nil {
			return fmt.Errorf("invalid --security-opt %q: no-new-privileges takes true or false", opt)
		}
		s.NoNewPrivileges = b
	case "seccomp":
		if value == seccompUnconfined || value == "" {
			s.Seccomp = seccompUnconfined
			return nil
		}
		b, err := os.ReadFile(value)
		if err != nil {
			return fmt.Errorf("opening seccomp profile (%s) failed: %w", value, err)
		}
		s.Seccomp = string(b)
	default:
		return fmt.Errorf("invalid --security-opt %q: only no-new-privileges and seccomp= are supported (no SELinux or AppArmor here)", opt)
	}
	return nil
}

// check refuses what docker refuses.
func (s Security) check() error {
	for _, name := range append(slices.Clone(s.CapAdd), s.CapDrop...) {
		if _, err := capNumber(name); err != nil && !strings.EqualFold(name, "ALL") {
			return err
		}
	}
	for _, u := range s.Ulimits {
		if _, ok := ulimitNames[u.Name]; !ok {
			return fmt.Errorf("invalid ulimit type: %s", u.Name)
		}
	}
	if s.ShmSize < 0 {
		return errors.New("invalid --shm-size: it must be positive")
	}
	if s.Seccomp != "" && s.Seccomp != seccompUnconfined {
		if _, err := seccompProfile(s); err != nil {
			return err
		}
	}
	return nil
}

// capabilities are the capabilities the container's root keeps, as
// docker computes them: all when privileged; else the defaults less
// --cap-drop (nothing with ALL) plus --cap-add (everything with ALL).
func (s Security) capabilities() []uintptr {
	all := make([]uintptr, 0, unix.CAP_LAST_CAP+1)
	for c := uintptr(0); c <= unix.CAP_LAST_CAP; c++ {
		all = append(all, c)
	}
	if s.Privileged || hasAll(s.CapAdd) {
		return all
	}
	var out []uintptr
	if !hasAll(s.CapDrop) {
		for _, c := range defaultCaps {
			if !slices.Contains(capNumbers(s.CapDrop), c) {
				out = append(out, c)
			}
		}
	}
	for _, c := range capNumbers(s.CapAdd) {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

func hasAll(names []string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, "ALL") })
}

// capNumbers are the numbers of the named capabilities (unknown names and
// ALL skipped: check refused them).
func capNumbers(names []string) []uintptr {
	var out []uintptr
	for _, n := range names {
		if c, err := capNumber(n); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// capNames are the capabilities by number, the kernel's names.
var capNames = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
	"LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
	"WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// capNumber returns the number of a capability named CHOWN, chown or
// CAP_CHOWN.
func capNumber(name string) (uintptr, error) {
	n := strings.TrimPrefix(strings.ToUpper(name), "CAP_")
	if i := slices.Index(capNames, n); i >= 0 && uintptr(i) <= unix.CAP_LAST_CAP {
		return uintptr(i), nil
	}
	return 0, fmt.Errorf("invalid capability: %s (unknown capability: %q)", name, "CAP_"+n)
}

// capNameList returns the CAP_ names of caps (for the seccomp profile's
// rules that depend on capabilities).
func capNameList(caps []uintptr) []string {
	out := make([]string, 0, len(caps))
	for _, c := range caps {
		if int(c) < len(capNames) {
			out = append(out, "CAP_"+capNames[c])
		}
	}
	return out
}

// setUlimits sets the container's resource limits on the init, before it
// execs the command (which inherits them). syscall.Setrlimit, not unix's:
// it tells the Go runtime not to put its own RLIMIT_NOFILE back at exec.
func setUlimits(ulimits []Ulimit) error {
	for _, u := range ulimits {
		lim := syscall.Rlimit{Cur: rlim(u.Soft), Max: rlim(u.Hard)}
		if err := syscall.Setrlimit(ulimitNames[u.Name], &lim); err != nil {
			return fmt.Errorf("ulimit %s=%d:%d: %w", u.Name, u.Soft, u.Hard, err)
		}
	}
	return nil
}

func rlim(v int64) uint64 {
	if v < 0 {
		return unix.RLIM_INFINITY
	}
	return uint64(v)
}
