package tests

// Docker parity of the container commands beyond running (issue 15):
// usage errors, run -h, system df and system prune.

import (
	"regexp"
	"strings"
	"testing"
)

// TestParityUsageErrors: a bad flag or argument of a docker command exits
// 125, as docker's CLI (cli.FlagErrorFunc) and podman; the commands of
// unionfuse's own keep 2 (TestCLIVersionAndHelp).
func TestParityUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"ps", "--bogus"}, {"images", "--bogus"}, {"inspect", "--bogus", "x"}, {"rm", "--bogus", "x"},
		{"stop", "--bogus", "x"}, {"logs", "--bogus", "x"}, {"exec", "--bogus", "x", "true"}, {"run", "--bogus", "x"},
		{"system", "--bogus", "df"}, {"history", "--bogus", "x"}, {"rmi", "--bogus", "x"}, {"wait", "--bogus", "x"},
		{"rm"}, {"run"},
	} {
		if r := cli(t, args...); r.code != 125 || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
			t.Errorf("%q: exit %d, stderr %q, stdout %q; want exit 125 and one line on stderr", args, r.code, r.stderr, r.stdout)
		}
	}
}

// TestParitySystem: run -h is the host name; system df counts running
// containers as active; system prune removes stopped containers and, with
// -a, images no container uses.
func TestParitySystem(t *testing.T) {
	e := newContainerEnv(t, requireContainers(t, false, false))
	expect(t, "run -h", e.u("run", "--rm", "-h", "box", "busybox", "hostname"), 0, "box\n", "")
	if r := e.u("run", "--help"); r.code != 0 || !strings.Contains(r.stdout, "-h, --hostname") {
		t.Errorf("run --help: exit %d, stdout %q", r.code, r.stdout)
	}
	mustSucceed(t, "run -d", e.u("run", "-d", "--name", "up", "busybox", "sleep", "100"))
	mustSucceed(t, "run", e.u("run", "--name", "down", "busybox", "true"))
	mustSucceed(t, "commit", e.u("commit", "down", "other:1"))
	df := e.u("system", "df")
	if !regexp.MustCompile(`(?m)^Containers\s+2\s+1\s`).MatchString(df.stdout) {
		t.Errorf("system df: want 2 containers, 1 active:\n%s", df.stdout)
	}
	r := e.u("system", "prune", "-f", "-a", "--volumes")
	mustSucceed(t, "system prune", r)
	if !strings.Contains(r.stdout, "Deleted Containers:\n") || strings.Contains(r.stdout, "Untagged: busybox") {
		t.Errorf("system prune -a: stdout %q", r.stdout)
	}
	if r := e.u("ps", "-aq"); len(strings.Fields(r.stdout)) != 1 {
		t.Errorf("ps -aq after prune: %q, want the running container only", r.stdout)
	}
	if r := e.u("images"); !strings.Contains(r.stdout, "busybox") || strings.Contains(r.stdout, "other") {
		t.Errorf("images after prune -a:\n%s", r.stdout)
	}
}

// TestParityInspectPs: inspect of a container with docker's names and
// templates; ps --filter, -l, -n and --format.
func TestParityInspectPs(t *testing.T) {
	e := newContainerEnv(t, requireContainers(t, false, false))
	expect(t, "run", e.u("run", "--name", "three", "busybox", "sh", "-c", "exit 3"), 3, "", "")
	mustSucceed(t, "run", e.u("run", "--name", "zero", "busybox", "true"))
	expect(t, "inspect -f", e.u("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.Name}} {{.Config.Cmd}} {{.Path}} {{json .Args}}", "three"),
		0, "exited 3 /three [sh -c exit 3] sh [\"-c\",\"exit 3\"]\n", "")
	expect(t, "inspect --type image", e.u("inspect", "--type", "image", "-f", "{{.Config.Cmd}}", "three"), 1, "", "three")
	if r := e.u("inspect", "-f", "{{.Id}}", "busybox"); r.code != 0 || !strings.HasPrefix(r.stdout, "sha256:") {
		t.Errorf("inspect IMAGE: exit %d, stdout %q", r.code, r.stdout)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ps", "--format", "{{.Names}}"}, ""},
		{[]string{"ps", "-a", "--format", "{{.Names}} {{.State}}"}, "zero exited\nthree exited\n"},
		{[]string{"ps", "--filter", "exited=3", "--format", "{{.Names}}"}, "three\n"},
		{[]string{"ps", "--filter", "status=exited", "--filter", "name=ze", "--format", "{{.Names}}"}, "zero\n"},
		{[]string{"ps", "-a", "--filter", "before=zero", "--format", "{{.Names}}"}, "three\n"},
		{[]string{"ps", "-a", "--filter", "since=three", "--filter", "ancestor=busybox", "--format", "{{.Names}}"}, "zero\n"},
		{[]string{"ps", "-n", "1", "--format", "{{.Names}}"}, "zero\n"},
		{[]string{"ps", "-l", "--format", "table {{.Names}}"}, "NAMES\nzero\n"},
	} {
		expect(t, strings.Join(tc.args, " "), e.u(tc.args...), 0, tc.want, "")
	}
}
