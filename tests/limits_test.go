package tests

// Resource limits and security of containers (issue 15): cgroup limits
// enforced and changed while running, stats and top, the OOM killer's
// exit status, the default seccomp profile, capabilities, --privileged.
// Root only for the cgroups (this machine: cgroup v1); one case runs
// rootless, where the limits are ignored with a warning.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cgroupDir is the container's cgroup directory of controller (v1) or the
// unified one (v2), from the container's recorded CgroupPath.
func cgroupDir(t *testing.T, e *containerEnv, id, controller string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.store, "containers", id, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), `"CgroupPath": "`)
	if !ok {
		t.Fatalf("state.json without a cgroup: %s", b)
	}
	p, _, _ := strings.Cut(rest, `"`)
	if cgroupV2() {
		return filepath.Join("/sys/fs/cgroup", p)
	}
	return filepath.Join("/sys/fs/cgroup", controller, p)
}

func cgroupV2() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}

// readCgroup returns a cgroup file's content, trimmed.
func readCgroup(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// cpuUsage is the CPU time the cgroup dir has used.
func cpuUsage(t *testing.T, dir string) time.Duration {
	t.Helper()
	if !cgroupV2() {
		n, err := strconv.ParseInt(readCgroup(t, dir, "cpuacct.usage"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return time.Duration(n)
	}
	for _, line := range strings.Split(readCgroup(t, dir, "cpu.stat"), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return time.Duration(n) * time.Microsecond
		}
	}
	t.Fatal("cpu.stat without usage_usec")
	return 0
}

// requireCgroups skips t unless root can make cgroups here.
func requireCgroups(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for cgroups")
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil && !cgroupV2() {
		t.Skip("no memory cgroup controller")
	}
}

func TestLimits(t *testing.T) {
	requireCgroups(t)
	mode := requireContainers(t, false, false)
	t.Run("oom", func(t *testing.T) {
		e := newContainerEnv(t, mode)
		r := e.u("run", "--name", "hog", "-m", "32m", "--memory-swap", "32m", "busybox", "tail", "/dev/zero")
		if r.code != 137 {
			t.Fatalf("memory hog: exit %d (%s), want 137", r.code, r.stderr)
		}
		expect(t, "inspect", e.u("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", "hog"), 0, "true 137\n", "")
		id := strings.TrimSpace(e.u("inspect", "-f", "{{.Id}}", "hog").stdout)
		checkNoCgroup(t, id)
		mustSucceed(t, "rm", e.u("rm", "hog"))
	})
	t.Run("pids", func(t *testing.T) {
		e := newContainerEnv(t, mode)
		r := e.u("run", "--rm", "--pids-limit", "10", "busybox", "sh", "-c", "for i in $(seq 30); do sleep 10 & done; echo forked all")
		if r.code == 0 || strings.Contains(r.stdout, "forked all") || !strings.Contains(r.stderr, "can't fork") {
			t.Errorf("fork loop under --pids-limit 10: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("cpus", func(t *testing.T) {
		e := newContainerEnv(t, mode)
		r := e.u("run", "-d", "--cpus", "0.5", "busybox", "sh", "-c", "while :; do :; done")
		mustSucceed(t, "run", r)
		id := strings.TrimSpace(r.stdout)
		dir := cgroupDir(t, e, id, "cpuacct")
		time.Sleep(500 * time.Millisecond)
		u0, t0 := cpuUsage(t, dir), time.Now()
		time.Sleep(3 * time.Second)
		u1, t1 := cpuUsage(t, dir), time.Now()
		// A loose bound: the quota caps it at 50%; a loaded machine may
		// give it less.
		if share := float64(u1-u0) / float64(t1.Sub(t0)); share > 0.65 || share < 0.1 {
			t.Errorf("busy loop under --cpus 0.5 used %.0f%% of a CPU", share*100)
		}
		mustSucceed(t, "rm", e.u("rm", "-f", id))
		checkNoCgroup(t, id)
	})
	t.Run("update-stats-top", func(t *testing.T) {
		e := newContainerEnv(t, mode)
		r := e.u("run", "-d", "--name", "lim", "-m", "64m", "--pids-limit", "50", "busybox", "sleep", "600")
		mustSucceed(t, "run", r)
		id := strings.TrimSpace(r.stdout)
		mustSucceed(t, "update", e.u("update", "--memory", "128m", "--memory-swap", "256m", "--pids-limit", "20", "lim"))
		if cgroupV2() {
			dir := cgroupDir(t, e, id, "")
			expectCgroup(t, dir, "memory.max", "134217728")
			expectCgroup(t, dir, "pids.max", "20")
		} else {
			expectCgroup(t, cgroupDir(t, e, id, "memory"), "memory.limit_in_bytes", "134217728")
			expectCgroup(t, cgroupDir(t, e, id, "pids"), "pids.max", "20")
		}
		expect(t, "inspect", e.u("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}", "lim"), 0, "134217728 20\n", "")
		r = e.u("stats", "--no-stream")
		mustSucceed(t, "stats", r)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "CONTAINER ID   NAME ") || !strings.Contains(lines[0], "MEM USAGE / LIMIT") ||
			!strings.HasPrefix(lines[1], id[:12]) || !strings.Contains(lines[1], "/ 128MiB") {
			t.Errorf("stats --no-stream:\n%s", r.stdout)
		}
		expect(t, "stats --format", e.u("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "lim"), 0, "lim 1\n", "")
		r = e.u("top", "lim")
		mustSucceed(t, "top", r)
		if !strings.HasPrefix(r.stdout, "UID ") || !strings.Contains(r.stdout, "sleep 600") || strings.Count(r.stdout, "\n") != 2 {
			t.Errorf("top:\n%s", r.stdout)
		}
		expect(t, "top -o", e.u("top", "lim", "-o", "comm"), 1, "", "PID")
		mustSucceed(t, "rm", e.u("rm", "-f", "lim"))
		checkNoCgroup(t, id)
	})
	t.Run("security", func(t *testing.T) {
		e := newContainerEnv(t, mode)
		probe := buildProbe(t, e.dir)
		vol := probe + ":/probe:ro"
		expect(t, "default profile", e.u("run", "--rm", "-v", vol, "busybox", "/probe"), 0,
			"unshare: operation not permitted\nkeyctl: operation not permitted\nadd_key: operation not permitted\n", "")
		r := e.u("run", "--rm", "-v", vol, "--security-opt", "seccomp=unconfined", "busybox", "/probe")
		if r.code != 0 || strings.Contains(r.stdout, "keyctl: operation not permitted") {
			t.Errorf("seccomp=unconfined: exit %d, %q", r.code, r.stdout)
		}
		expect(t, "chown", e.u("run", "--rm", "busybox", "chown", "1", "/tmp"), 0, "", "")
		expect(t, "chown --cap-drop ALL", e.u("run", "--rm", "--cap-drop", "ALL", "busybox", "chown", "1", "/tmp"), 1, "", "Operation not permitted")
		expect(t, "mount", e.u("run", "--rm", "busybox", "mount", "-t", "tmpfs", "t", "/tmp"), 1, "", "denied")
		expect(t, "mount --privileged", e.u("run", "--rm", "--privileged", "busybox", "sh", "-c", "mount -t tmpfs t /tmp && grep -c ' /tmp tmpfs' /proc/mounts"), 0, "1\n", "")
		expect(t, "--cap-add SYS_ADMIN", e.u("run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c", "mount -t tmpfs t /tmp && echo ok"), 0, "ok\n", "")
		expect(t, "seccomp=FILE", e.u("run", "--rm", "--security-opt", "seccomp="+writeProfile(t, e.dir), "busybox", "mkdir", "/x"), 1, "", "Operation not permitted")
		expect(t, "--ulimit", e.u("run", "--rm", "--ulimit", "nofile=100:200", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn"), 0, "100\n200\n", "")
		expect(t, "--shm-size", e.u("run", "--rm", "--shm-size", "2m", "busybox", "sh", "-c", "df -k /dev/shm | awk 'NR==2 {print $2}'"), 0, "2048\n", "")
	})
}

// TestLimitsRootless: without root and without a delegated cgroup, a
// container's limits are ignored after one warning.
func TestLimitsRootless(t *testing.T) {
	if cgroupV2() {
		t.Skip("cgroup v2 may be delegated to the user here")
	}
	e := newContainerEnv(t, requireContainers(t, true, false))
	r := e.u("run", "--rm", "-m", "64m", "--pids-limit", "5", "busybox", "echo", "ran")
	if r.code != 0 || r.stdout != "ran\n" || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "limits are not supported and ignored") {
		t.Errorf("rootless run with limits: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	expect(t, "without limits", e.u("run", "--rm", "busybox", "echo", "ran"), 0, "ran\n", "")
}

func expectCgroup(t *testing.T, dir, file, want string) {
	t.Helper()
	if got := readCgroup(t, dir, file); got != want {
		t.Errorf("%s/%s = %q, want %q", dir, file, got, want)
	}
}

// checkNoCgroup fails t if a cgroup of container id is left.
func checkNoCgroup(t *testing.T, id string) {
	t.Helper()
	left, _ := filepath.Glob("/sys/fs/cgroup/*/unionfuse/" + id)
	more, _ := filepath.Glob("/sys/fs/cgroup/unionfuse/" + id)
	if left = append(left, more...); len(left) > 0 {
		t.Errorf("cgroups left after the container ended: %v", left)
	}
}

// probeSource tries the system calls docker's profile denies and prints
// what each returned.
const probeSource = `package main

import (
	"fmt"
	"syscall"
	"unsafe"
)

func main() {
	show := func(name string, err error) {
		if err == nil {
			fmt.Println(name + ": ok")
			return
		}
		fmt.Println(name + ": " + err.Error())
	}
	show("unshare", syscall.Unshare(syscall.CLONE_NEWUSER))
	_, _, e := syscall.Syscall(syscall.SYS_KEYCTL, 0, ^uintptr(2), 0) // KEYCTL_GET_KEYRING_ID, session
	show("keyctl", errOf(e))
	typ, desc := []byte("user\x00"), []byte("probe\x00")
	_, _, e = syscall.Syscall6(syscall.SYS_ADD_KEY, uintptr(unsafe.Pointer(&typ[0])), uintptr(unsafe.Pointer(&desc[0])), 0, 0, ^uintptr(2), 0)
	show("add_key", errOf(e))
}

func errOf(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}
`

// buildProbe builds probeSource statically into dir and returns its path.
func buildProbe(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "probe.go")
	if err := os.WriteFile(src, []byte(probeSource), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "probe")
	cmd := exec.Command("go", "build", "-o", out, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build the probe: %v\n%s", err, b)
	}
	return out
}

// writeProfile writes a seccomp profile in docker's format that allows
// everything but mkdir and mkdirat, and returns its path.
func writeProfile(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "profile.json")
	profile := `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}`
	if err := os.WriteFile(p, []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
