package reexec

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The process roles (see the package documentation).
const (
	// Daemon serves one union mount in the background (internal/daemon).
	Daemon = "daemon"
	// Monitor runs a detached container, its output in the container's
	// log (runner).
	Monitor = "monitor"
	// ContainerInit is a container's first process: it sets up the
	// container's root in its new namespaces and execs its command
	// (runner).
	ContainerInit = "init"
	// UserNSHolder holds the rootless user and mount namespaces that
	// store and container commands enter when not root (runner).
	UserNSHolder = "userns"
	// Exporter writes a container's root as a tarball from inside a
	// chroot (runner).
	Exporter = "export"
	// SocketHelper makes sockets in a container's network namespace for
	// its published ports, when setns(2) is not allowed (runner).
	SocketHelper = "socket-helper"
	// Copier stats, tars or untars a path of a container from inside a
	// chroot into its root, its volumes bound (runner, unionfuse cp).
	Copier = "cp"
	// UnionServer serves the unions of one root, for as long as they
	// are mounted, on requests from its clients (internal/unionserver).
	UnionServer = "union-server"
	// NetNSHolder holds the network namespace that a rootless user's
	// containers on user-defined networks share, with its slirp4netns
	// (network).
	NetNSHolder = "netns"
)

// envRole names the role a process was started in.
const envRole = "UNIONFUSE_ROLE"

// roles are the registered main functions, by role.
var roles = map[string]func() int{}

// Register makes main the main function of role. It is called from an
// init function of the package that defines the role; registering a role
// twice panics.
func Register(role string, main func() int) {
	if _, dup := roles[role]; dup {
		panic("reexec: role " + role + " registered twice")
	}
	roles[role] = main
}

// Current returns the role this process was started in, "" for none (the
// command line). After Run it is "" again.
func Current() string { return os.Getenv(envRole) }

// Run runs the main function of this process's role and reports whether
// the process was started in one, with the exit status. main calls it
// first and exits with the status when ok. A role that nobody registered
// panics: the binary was built without the package that defines it.
func Run() (code int, ok bool) {
	role := Current()
	if role == "" {
		return 0, false
	}
	os.Unsetenv(envRole)
	main := roles[role]
	if main == nil {
		panic(fmt.Sprintf("reexec: unknown process role %q", role))
	}
	nameProcess()
	return main(), true
}

// nameProcess gives a process started as /proc/self/exe the binary's name
// in ps and top (the kernel names it "exe"). Cosmetic, so best effort.
func nameProcess() {
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "exe" {
		return
	}
	if exe, err := os.Executable(); err == nil {
		os.WriteFile("/proc/self/comm", []byte(filepath.Base(exe)), 0)
	}
}

// Command returns a command that starts this binary (/proc/self/exe) in
// role. name is its argv[0], what ps shows, and args follow it. Its
// environment is env (nil for none) and the role's variable. The caller
// sets the rest (descriptors, working directory, SysProcAttr) and starts
// it.
func Command(role, name string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Args[0] = name
	cmd.Env = append(append([]string(nil), env...), Env(role))
	return cmd
}

// Env returns the environment variable that starts this binary in role,
// for a role started through another program (nsenter(1)) rather than by
// Command.
func Env(role string) string { return envRole + "=" + role }

// Sibling returns the path of the binary beside this one whose name is
// this binary's with suffix added (unionfuse-fuse beside unionfuse), or ""
// when there is none, or when this binary's name already ends with
// suffix. Small siblings run roles whose start is on a user's critical
// path: their package initialisation costs a fraction of the whole CLI's
// (docs/benchmarks.md, "Mount start"). They are built and installed
// together with the CLI (make build, make install), so the specs that
// pass between them match.
func Sibling(suffix string) string {
	exe, err := os.Executable()
	if err != nil || strings.HasSuffix(exe, suffix) {
		return ""
	}
	return siblingOf(exe, suffix)
}

// siblingOf returns exe+suffix when it is an executable regular file,
// else "".
func siblingOf(exe, suffix string) string {
	p := exe + suffix
	if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return ""
	}
	return p
}
