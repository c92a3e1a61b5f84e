package tests

// The CLI compatibility test of issue 15: the same command forms run
// against the same busybox image under unionfuse and under podman 4.3, their
// exit statuses and the output fields that must agree compared.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// compatPodman is a podman whose store, run state, configuration and
// events live below one temporary directory: vfs storage, runc, cgroupfs,
// no network.
type compatPodman struct {
	dir   string
	flags []string
	env   []string
}

// newCompatPodman sets up a compatPodman; when t ends it removes the
// containers and resets the store, and fails t for any process left
// running from the directory.
func newCompatPodman(t *testing.T) *compatPodman {
	t.Helper()
	dir := testDir(t)
	storage := fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", filepath.Join(dir, "root"), filepath.Join(dir, "run"))
	conf := map[string]string{"containers.conf": podmanContainersConf(dir), "storage.conf": storage, "registries.conf": ""}
	for name, data := range conf {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := &compatPodman{dir: dir,
		flags: []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs",
			"--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"},
		env: append(os.Environ(),
			"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
			"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
			"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf")),
	}
	t.Cleanup(func() {
		p.run(t, "rm", "-f", "-t", "0", "-a")
		if r := p.run(t, "system", "reset", "-f"); r.code != 0 {
			t.Errorf("podman system reset: exit %d: %s", r.code, r.stderr)
		}
		// conmon and the container's processes may take a moment to go.
		for i := 0; i < 50 && len(processesMentioning(dir)) > 0; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		for _, pid := range processesMentioning(dir) {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			t.Errorf("process %d still running at the end of the test: %q", pid, strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	})
	return p
}

// run runs podman with p's flags and args.
func (p *compatPodman) run(t testing.TB, args ...string) result {
	t.Helper()
	cmd := exec.Command("podman", append(append([]string{}, p.flags...), args...)...)
	cmd.Env = p.env
	cmd.Dir = p.dir
	return run(t, cmd)
}

// compatCase is one command form: args, and how its output is compared.
type compatCase struct {
	args []string
	// norm reduces stdout to what must agree; nil compares the exit
	// status only.
	norm func(string) string
	// dockerExit, when why is set, is the exit status docker gives where
	// podman's differs (why says how); unionfuse must give docker's.
	dockerExit int
	why        string
	// known, when set, is an open difference of unionfuse's from both
	// (issue 15): it is logged, not failed, until fixed.
	known string
}

// exact compares the whole stdout.
func exact(s string) string { return s }

// dockerHubPrefix is what podman puts before an image name that docker
// shows without a registry.
const dockerHubPrefix = "docker.io/library/"

// podmanLoadPrefix is what podman load puts before a short name of a
// docker archive (docker keeps "busybox:latest").
const podmanLoadPrefix = "localhost/"

// imageNames drops the registry podman adds to docker's short names, and
// sorts the lines.
func imageNames(s string) string {
	s = strings.ReplaceAll(s, dockerHubPrefix, "")
	var out []string
	for _, line := range strings.Split(s, "\n") {
		out = append(out, strings.TrimPrefix(line, podmanLoadPrefix))
	}
	return sortedLines(strings.Join(out, "\n"))
}

// sortedLines is s's lines sorted.
func sortedLines(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// statusWords keeps the name and the first two words of the status of
// each "NAME STATUS..." line ("up Up", "three Exited (3)"): the durations
// differ.
func statusWords(s string) string {
	var out []string
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		f := strings.Fields(line)
		if len(f) > 3 {
			f = f[:3]
		}
		if len(f) == 3 && !strings.HasPrefix(f[2], "(") {
			f = f[:2]
		}
		out = append(out, strings.Join(f, " "))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// pathEnv is the PATH= entry of a JSON list of environment variables
// (podman adds HOSTNAME, TERM and container= to the others).
func pathEnv(s string) string {
	var env []string
	if err := json.Unmarshal([]byte(s), &env); err != nil {
		return "not a JSON list: " + s
	}
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return e
		}
	}
	return "no PATH"
}

// lineCount is the number of lines of s.
func lineCount(s string) string { return fmt.Sprint(strings.Count(s, "\n")) }

// compatCases are the forms compared. The containers are made by
// TestCompatPodman: three (exited 3), zero (exited 0), hello (printed hi)
// and up (running).
var compatCases = []compatCase{
	{args: []string{"inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}}", "three"}, norm: exact},
	{args: []string{"inspect", "-f", "{{.State.Status}} {{.State.Running}}", "up"}, norm: exact},
	{args: []string{"inspect", "-f", "{{.Config.Cmd}}", "three"}, norm: exact},
	{args: []string{"inspect", "-f", "{{json .Config.Cmd}}", "three"}, norm: exact},
	{args: []string{"inspect", "-f", "{{json .Config.Env}}", "zero"}, norm: pathEnv},
	{args: []string{"inspect", "-f", "{{.Config.Cmd}}", "busybox"}, norm: exact},
	{args: []string{"ps", "--format", "{{.Names}} {{.Status}}"}, norm: statusWords},
	{args: []string{"ps", "-a", "--format", "{{.Names}} {{.Status}}"}, norm: statusWords},
	{args: []string{"ps", "-a", "--filter", "exited=3", "--format", "{{.Names}}"}, norm: exact},
	{args: []string{"ps", "-a", "--filter", "status=running", "--format", "{{.Names}}"}, norm: exact},
	{args: []string{"ps", "-aq"}, norm: lineCount},
	{args: []string{"images", "--format", "{{.Repository}}:{{.Tag}}"}, norm: imageNames},
	{args: []string{"images", "--format", "{{.Repository}}:{{.Tag}}", "busybox"}, norm: imageNames},
	{args: []string{"images", "-q"}, norm: lineCount},
	{args: []string{"logs", "hello"}, norm: exact},
	{args: []string{"logs", "--tail", "1", "hello"}, norm: exact},
	{args: []string{"logs", "--since", "1h", "hello"}, norm: exact},
	{args: []string{"inspect", "-f", "{{.RestartCount}}", "three"}, norm: exact},
	{args: []string{"wait", "three"}, norm: exact},
	{args: []string{"exec", "up", "sh", "-c", "echo $((6*7))"}, norm: exact},
	{args: []string{"exec", "-w", "/tmp", "up", "pwd"}, norm: exact},
	{args: []string{"version", "--format", "{{.Client.Os}}"}, norm: exact},
	{args: []string{"exec", "zero", "true"}, dockerExit: 1, why: "podman exits 255 for a stopped container"},
	{args: []string{"run", "--rm", "--label", "a=b", "--stop-signal", "USR1", "busybox", "true"}, norm: exact},
	{args: []string{"run", "--rm", "busybox", "sh", "-c", "exit 5"}, norm: exact},
	{args: []string{"run", "--rm", "-e", "A=b", "-w", "/tmp", "busybox", "sh", "-c", "echo $A; pwd"}, norm: exact},
	// Limits and security (limits_test.go tests them in depth).
	{args: []string{"run", "--rm", "-m", "32m", "--memory-swap", "32m", "busybox", "tail", "/dev/zero"}},
	{args: []string{"run", "--rm", "--cap-drop", "ALL", "busybox", "sh", "-c", "chown 1 /tmp; echo $?"}, norm: exact},
	{args: []string{"run", "--rm", "--cap-drop", "ALL", "--cap-add", "CHOWN", "busybox", "grep", "CapEff", "/proc/self/status"}, norm: exact},
	{args: []string{"run", "--rm", "busybox", "sh", "-c", "mount -t tmpfs t /tmp; echo $?"}, norm: exact},
	{args: []string{"run", "--rm", "--privileged", "busybox", "sh", "-c", "mount -t tmpfs t /tmp; echo $?"}, norm: exact},
	{args: []string{"run", "--rm", "busybox", "grep", "Seccomp:", "/proc/self/status"}, norm: exact},
	{args: []string{"run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "grep", "Seccomp:", "/proc/self/status"}, norm: exact},
	{args: []string{"run", "--rm", "--security-opt", "no-new-privileges", "busybox", "grep", "NoNewPrivs", "/proc/self/status"}, norm: exact},
	{args: []string{"run", "--rm", "--shm-size", "1m", "busybox", "sh", "-c", "df -k /dev/shm | tail -1 | awk '{print $2}'"}, norm: exact},
	{args: []string{"run", "--rm", "--device", "/dev/fuse", "busybox", "sh", "-c", "test -c /dev/fuse && echo ok"}, norm: exact},
	{args: []string{"run", "-d", "--name", "lim", "-m", "64m", "--cpus", "0.5", "--pids-limit", "50", "busybox", "sleep", "60"}},
	{args: []string{"inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}", "lim"}, norm: exact},
	// Docker prints update's arguments back, podman the full ids; podman
	// 4.3's inspect keeps the limits of the creation, docker's shows the
	// update's (limits_test.go checks them): exit statuses only.
	{args: []string{"update", "--memory", "128m", "--memory-swap", "256m", "lim"}},
	{args: []string{"inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}", "lim"}},
	{args: []string{"stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "lim"}, norm: exact},
	{args: []string{"top", "lim"}, norm: lineCount},
	{args: []string{"rm", "-f", "lim"}, norm: exact},
	{args: []string{"run", "--rm", "--cap-add", "NOSUCH", "busybox", "true"}},
	{args: []string{"run", "--rm", "--ulimit", "bogus=1", "busybox", "true"}},
	{args: []string{"update", "--memory", "64m", "nosuchcontainer"}, dockerExit: 1, why: "podman exits 125 for a missing container"},
	// Errors: bad flags, missing containers and images.
	{args: []string{"ps", "--bogus"}},
	{args: []string{"images", "--bogus"}},
	{args: []string{"inspect", "--bogus", "three"}},
	{args: []string{"run", "--bogus", "busybox"}},
	{args: []string{"logs", "--bogus", "three"}},
	{args: []string{"rm", "nosuchcontainer"}},
	{args: []string{"stop", "nosuchcontainer"}, dockerExit: 1, why: "podman exits 125 for a missing container"},
	{args: []string{"logs", "nosuchcontainer"}, dockerExit: 1, why: "podman exits 125 for a missing container"},
	{args: []string{"wait", "nosuchcontainer"}, dockerExit: 1, why: "podman exits 125 for a missing container"},
	{args: []string{"exec", "nosuchcontainer", "true"}, dockerExit: 1, why: "podman exits 125 for a missing container"},
	{args: []string{"inspect", "nosuchcontainer"}, dockerExit: 1, why: "podman exits 125 for a missing object"},
	{args: []string{"inspect", "--type", "image", "three"}, dockerExit: 1, why: "podman exits 125 for a missing object"},
	{args: []string{"rmi", "nosuchimage"}},
	{args: []string{"history", "nosuchimage"}, dockerExit: 1, why: "podman exits 125 for a missing image"},
	// Volumes (vol1 made by the setup, used by withvol) and cp.
	{args: []string{"volume", "ls", "-q"}, norm: exact},
	{args: []string{"volume", "ls", "--format", "{{.Name}} {{.Driver}}"}, norm: exact},
	{args: []string{"volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Scope}}", "vol1"}, norm: exact},
	{args: []string{"inspect", "-f", "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.RW}}{{end}}", "withvol"}, norm: exact},
	{args: []string{"run", "--rm", "-v", "vol1:/data", "busybox", "cat", "/data/f"}, norm: exact},
	{args: []string{"run", "--rm", "--mount", "type=volume,source=vol1,target=/d", "busybox", "cat", "/d/f"}, norm: exact},
	{args: []string{"run", "--rm", "--tmpfs", "/t", "busybox", "sh", "-c", "grep -c ' /t tmpfs' /proc/mounts"}, norm: exact},
	{args: []string{"volume", "rm", "vol1"}, dockerExit: 1, why: "podman exits 2 for a volume in use"},
	{args: []string{"volume", "inspect", "nosuchvolume"}, dockerExit: 1, why: "podman exits 125 for a missing volume"},
	{args: []string{"volume", "create", "--bogus"}},
	{args: []string{"cp", "/etc/os-release", "zero:/tmp/"}},
	{args: []string{"cp", "zero:/tmp/os-release", "-"}, norm: tarEntries},
	{args: []string{"cp", "zero:/nosuch", "-"}, dockerExit: 1, why: "podman exits 125 for a missing path"},
	{args: []string{"cp", "--bogus", "zero:/tmp", "-"}},
	// Management commands.
	{args: []string{"image", "ls", "--format", "{{.Repository}}:{{.Tag}}"}, norm: imageNames},
	{args: []string{"container", "ls", "-a", "--format", "{{.Names}}"}, norm: sortedLines},
	{args: []string{"container", "inspect", "-f", "{{.State.ExitCode}}", "three"}, norm: exact},
	{args: []string{"image", "inspect", "-f", "{{.Config.Cmd}}", "busybox"}, norm: exact},
	{args: []string{"rename", "nosuchcontainer", "x2"}, dockerExit: 1, why: "podman exits 125 for a missing container"},
	{args: []string{"attach", "zero"}, dockerExit: 1, why: "podman exits 125 for a stopped container"},
	// Pause, on a container of their own, removed again (pause_test.go
	// tests it in depth). Podman's inspect says Running false for a
	// paused container, docker's true: not compared.
	{args: []string{"run", "-d", "--name", "pz", "busybox", "sleep", "600"}, norm: lineCount},
	{args: []string{"pause", "pz"}, norm: exact},
	{args: []string{"inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "pz"}, norm: exact},
	{args: []string{"ps", "-a", "--filter", "status=paused", "--format", "{{.Names}}"}, norm: exact},
	{args: []string{"ps", "-a", "--filter", "status=running", "--filter", "name=pz", "--format", "{{.Names}}"}, norm: exact},
	{args: []string{"pause", "pz"}, dockerExit: 1, why: "podman exits 125 for a paused container"},
	{args: []string{"exec", "pz", "true"}, dockerExit: 1, why: "podman exits 255 for a paused container"},
	{args: []string{"rm", "pz"}, dockerExit: 1, why: "podman exits 2 for a paused container"},
	{args: []string{"start", "pz"}, dockerExit: 1, why: "podman exits 125 for a paused container"},
	{args: []string{"unpause", "pz"}, norm: exact},
	{args: []string{"inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "pz"}, norm: exact},
	{args: []string{"unpause", "pz"}, dockerExit: 1, why: "podman exits 125 for a container not paused"},
	{args: []string{"pause", "zero"}, dockerExit: 1, why: "podman exits 125 for a stopped container"},
	{args: []string{"pause", "pz"}, norm: exact},
	{args: []string{"rm", "-f", "pz"}, norm: exact},
	{args: []string{"pause", "nosuchcontainer"}, dockerExit: 1, why: "podman exits 125 for a missing container"},
	{args: []string{"unpause", "nosuchcontainer"}, dockerExit: 1, why: "podman exits 125 for a missing container"},
	// Last: they add containers.
	{args: []string{"create", "--name", "made", "busybox", "true"}, norm: lineCount},
	{args: []string{"inspect", "-f", "{{.State.Status}}", "made"}, norm: exact},
	{args: []string{"commit", "-c", `CMD ["x"]`, "zero", "changed"}},
	{args: []string{"inspect", "-f", "{{json .Config.Cmd}}", "changed"}, norm: exact},
}

// tarEntries is the entry names of a tar stream.
func tarEntries(s string) string { return tarNames([]byte(s)) }

// TestCompatPodman runs compatCases under unionfuse and podman 4.3 on the
// same busybox image (unionfuse save → podman load) and compares their
// exit statuses and normalised output.
func TestCompatPodman(t *testing.T) {
	requirePodman(t)
	e := newContainerEnv(t, requireContainers(t, false, false))
	p := newCompatPodman(t)
	archive := filepath.Join(e.dir, "busybox.tar")
	mustSucceed(t, "save", e.u("save", "-o", archive, "busybox"))
	if r := p.run(t, "load", "-q", "-i", archive); r.code != 0 {
		t.Fatalf("podman load: exit %d: %s", r.code, r.stderr)
	}
	setup := [][]string{
		{"run", "--name", "three", "busybox", "sh", "-c", "exit 3"},
		{"run", "--name", "zero", "busybox", "true"},
		{"run", "--name", "hello", "busybox", "echo", "hi"},
		{"run", "-d", "--name", "up", "busybox", "sleep", "60"},
		{"volume", "create", "vol1"},
		{"run", "--name", "withvol", "-v", "vol1:/data", "busybox", "sh", "-c", "echo v > /data/f"},
	}
	for _, args := range setup {
		u, pm := e.u(args...), p.run(t, args...)
		if u.code != pm.code {
			t.Fatalf("%q: unionfuse exit %d, podman exit %d (%s)", args, u.code, pm.code, pm.stderr)
		}
	}
	defer e.u("rm", "-f", "up")
	for _, tc := range compatCases {
		u, pm := e.u(tc.args...), p.run(t, tc.args...)
		what := strings.Join(tc.args, " ")
		wantExit := pm.code
		if tc.why != "" {
			wantExit = tc.dockerExit
		}
		var diff string
		switch {
		case u.code != wantExit:
			diff = fmt.Sprintf("unionfuse exit %d, want %d (podman %d)\nunionfuse stderr: %s\npodman stderr: %s", u.code, wantExit, pm.code, u.stderr, pm.stderr)
		case tc.norm != nil && tc.norm(u.stdout) != tc.norm(pm.stdout):
			diff = fmt.Sprintf("unionfuse printed %q, podman %q", u.stdout, pm.stdout)
		}
		switch {
		case tc.known != "" && diff != "":
			t.Logf("%s: known difference (%s): %s", what, tc.known, diff)
		case tc.known != "":
			t.Logf("%s: agrees now; drop known %q", what, tc.known)
		case diff != "":
			t.Errorf("%s: %s", what, diff)
		}
	}
}
