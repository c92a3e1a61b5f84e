package tests

// unionfuse pause and unpause (issue 15) end to end: a counter loop in a
// busybox container stops advancing while paused and resumes after,
// inspect/ps/info/events show it, stop/kill/rm -f/restart end or restart
// a paused container, and docker's errors. As root the freezer cgroup
// stops the processes; rootless (no cgroup on v1) SIGSTOP does.

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPause(t *testing.T)         { testPause(t, false, false) }
func TestPauseRootless(t *testing.T) { testPause(t, true, false) }

// TestPauseSubIDs: the container's processes run as the user's
// subordinate ids, which only the rootless user namespace may signal.
func TestPauseSubIDs(t *testing.T) { testPause(t, true, true) }

// counterLoop counts in /tmp/c of its container, 20 times a second.
const counterLoop = "i=0; while :; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/c; sleep 0.05; done"

// execLoop is counterLoop's twin for exec -d, counting in /tmp/e.
const execLoop = "i=0; while :; do i=$((i+1)); echo $i > /tmp/e.new; mv /tmp/e.new /tmp/e; sleep 0.05; done"

func testPause(t *testing.T, rootless, subIDs bool) {
	mode := requireContainers(t, rootless, subIDs)
	subtest := func(name string, f func(t *testing.T, e *containerEnv)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, newContainerEnv(t, mode))
		})
	}

	subtest("counter stops and resumes", func(t *testing.T, e *containerEnv) {
		mustSucceed(t, "run -d", e.u("run", "-d", "--name", "cnt", "busybox", "sh", "-c", counterLoop))
		count, execCount := counter(t, e, "cnt", "c"), counter(t, e, "cnt", "e")
		// The commands exec starts are stopped too (not in the cgroup:
		// SIGSTOP), and exec still sees its command end after unpause.
		mustSucceed(t, "exec -d", e.u("exec", "-d", "cnt", "sh", "-c", execLoop))
		fg := e.command("exec", "cnt", "sh", "-c", "echo 1 > /tmp/f; sleep 4; echo done")
		var fgOut strings.Builder
		fg.Stdout = &fgOut
		if err := fg.Start(); err != nil {
			t.Fatal(err)
		}
		fgDone := make(chan error, 1)
		go func() { fgDone <- fg.Wait() }()
		defer fg.Process.Kill()
		waitFor(t, func() bool { return count() >= 3 && execCount() >= 3 && counter(t, e, "cnt", "f")() == 1 })
		expect(t, "pause", e.u("pause", "cnt"), 0, "cnt\n", "")
		before, execBefore := count(), execCount()
		time.Sleep(time.Second)
		if after := count(); after != before {
			t.Errorf("the counter went from %d to %d in a second of pause", before, after)
		}
		if after := execCount(); after != execBefore {
			t.Errorf("exec's counter went from %d to %d in a second of pause", execBefore, after)
		}
		select {
		case err := <-fgDone:
			t.Fatalf("exec ended while paused: %v, stdout %q", err, fgOut.String())
		default:
		}
		// Its root is served from outside: still readable.
		if r := e.u("cp", "cnt:/tmp/c", "-"); r.code != 0 || !strings.Contains(r.stdout, strconv.Itoa(before)+"\n") {
			t.Errorf("cp from a paused container: exit %d, stderr %q", r.code, r.stderr)
		}
		expect(t, "inspect", e.u("inspect", "-f", "{{.State.Status}} {{.State.Running}} {{.State.Paused}}", "cnt"), 0, "paused true true\n", "")
		if r := e.u("ps", "--format", "{{.Names}} {{.Status}} {{.State}}"); !regexp.MustCompile(`^cnt Up [0-9a-zA-Z ]+ \(Paused\) paused\n$`).MatchString(r.stdout) {
			t.Errorf("ps: %+v", r)
		}
		expect(t, "ps --filter status=paused", e.u("ps", "--filter", "status=paused", "--format", "{{.Names}}"), 0, "cnt\n", "")
		expect(t, "ps --filter status=running", e.u("ps", "--filter", "status=running", "--format", "{{.Names}}"), 0, "", "")
		expect(t, "info", e.u("info", "--format", "{{.ContainersRunning}} {{.ContainersPaused}} {{.ContainersStopped}}"), 0, "0 1 0\n", "")
		// commit's own pause leaves the container paused.
		mustSucceed(t, "commit", e.u("commit", "cnt", "snap"))
		expect(t, "inspect after commit", e.u("inspect", "-f", "{{.State.Status}}", "cnt"), 0, "paused\n", "")
		if after := count(); after != before {
			t.Errorf("the counter went from %d to %d across commit", before, after)
		}
		expect(t, "unpause", e.u("unpause", "cnt"), 0, "cnt\n", "")
		waitFor(t, func() bool { return count() > before+2 && execCount() > execBefore+2 })
		select {
		case err := <-fgDone:
			if err != nil || fgOut.String() != "done\n" {
				t.Errorf("exec across the pause: %v, stdout %q", err, fgOut.String())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("exec across the pause did not end after unpause")
		}
		expect(t, "inspect unpaused", e.u("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "cnt"), 0, "running false\n", "")
		expect(t, "info unpaused", e.u("info", "--format", "{{.ContainersRunning}} {{.ContainersPaused}}"), 0, "1 0\n", "")
		expect(t, "events", e.u("events", "--since", "1h", "--until", "0s", "--filter", "container=cnt", "--format", "{{.Action}}"),
			0, "create\nstart\npause\nunpause\n", "")
	})

	subtest("errors", func(t *testing.T, e *containerEnv) {
		mustSucceed(t, "run -d", e.u("run", "-d", "--name", "up", "busybox", "sleep", "60"))
		mustSucceed(t, "run", e.u("run", "--name", "down", "busybox", "true"))
		expect(t, "unpause running", e.u("unpause", "up"), 1, "", "Container "+shortID(t, e, "up")+" is not paused")
		expect(t, "pause stopped", e.u("pause", "down"), 1, "", "is not running")
		expect(t, "pause unknown", e.u("pause", "nosuch"), 1, "", "no such container")
		expect(t, "pause nothing", e.u("pause"), 125, "", "want at least one CONTAINER")
		expect(t, "pause flag", e.u("pause", "--bogus", "up"), 125, "", "bogus")
		// Each name is tried: the good ones printed, the status 1.
		expect(t, "pause some", e.u("pause", "nosuch", "up"), 1, "up\n", "no such container")
		expect(t, "pause again", e.u("pause", "up"), 1, "", "Container "+shortID(t, e, "up")+" is already paused")
		expect(t, "exec", e.u("exec", "up", "true"), 1, "", "is paused, unpause the container before exec")
		expect(t, "attach", e.u("attach", "up"), 1, "", "You cannot attach to a paused container, unpause it first")
		expect(t, "start", e.u("start", "up"), 1, "", "cannot start a paused container, try unpause instead")
		expect(t, "rm", e.u("rm", "up"), 1, "", "You cannot remove a paused container")
		expect(t, "still paused", e.u("inspect", "-f", "{{.State.Status}}", "up"), 0, "paused\n", "")
		expect(t, "unpause both", e.u("unpause", "up", "down"), 1, "up\n", "is not paused")
		expect(t, "unpause again", e.u("unpause", "up"), 1, "", "is not paused")
	})

	subtest("stop kill rm restart a paused container", func(t *testing.T, e *containerEnv) {
		for _, name := range []string{"st", "ki", "rmf", "re", "usr"} {
			mustSucceed(t, "run -d", e.u("run", "-d", "--name", name, "--stop-signal", stopSignalOf(name), "busybox", "sh", "-c",
				"trap 'exit 7' TERM; trap 'echo usr1 > /tmp/usr1' USR1; touch /tmp/trapped; while :; do sleep 0.05; done"))
			// Paused before its traps are set, the shell (its pid
			// namespace's init) would drop TERM and USR1: the kernel
			// discards a signal an init does not handle.
			waitFor(t, func() bool { return e.u("exec", name, "test", "-e", "/tmp/trapped").code == 0 })
			mustSucceed(t, "pause", e.u("pause", name))
		}
		// Exit status 7: the TERM trap ran (after 20 s SIGKILL gives 137).
		expect(t, "stop", e.u("stop", "-t", "20", "st"), 0, "st\n", "")
		expect(t, "stopped", e.u("inspect", "-f", "{{.State.Status}} {{.State.Paused}} {{.State.ExitCode}}", "st"), 0, "exited false 7\n", "")
		expect(t, "kill", e.u("kill", "ki"), 0, "ki\n", "")
		expect(t, "killed", e.u("wait", "ki"), 0, "137\n", "")
		expect(t, "rm -f", e.u("rm", "-f", "rmf"), 0, "rmf\n", "")
		expect(t, "restart", e.u("restart", "-t", "20", "re"), 0, "re\n", "")
		expect(t, "restarted", e.u("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "re"), 0, "running false\n", "")
		// A signal that is not its stop signal waits for unpause, as
		// docker's kill.
		expect(t, "kill -s USR1", e.u("kill", "-s", "USR1", "usr"), 0, "usr\n", "")
		expect(t, "still paused", e.u("inspect", "-f", "{{.State.Status}}", "usr"), 0, "paused\n", "")
		mustSucceed(t, "unpause", e.u("unpause", "usr"))
		waitFor(t, func() bool { return e.u("exec", "usr", "cat", "/tmp/usr1").stdout == "usr1\n" })
		expect(t, "events", e.u("events", "--since", "1h", "--until", "0s", "--filter", "container=ki", "--format", "{{.Action}}"),
			0, "create\nstart\npause\nkill\nunpause\ndie\n", "")
		if !rootless {
			for _, name := range []string{"st", "ki"} {
				checkNoCgroup(t, strings.TrimSpace(e.u("inspect", "-f", "{{.Id}}", name).stdout))
			}
		}
	})
}

// stopSignalOf is the stop signal the stop/kill subtest gives container
// name: USR2 for usr (so that USR1 does not unpause it), TERM otherwise.
func stopSignalOf(name string) string {
	if name == "usr" {
		return "USR2"
	}
	return "TERM"
}

// counter returns what reads the number in /tmp/NAME of container
// name (counterLoop's), through its layer on the host (exec is refused
// while paused); 0 before there is one.
func counter(t *testing.T, e *containerEnv, name, file string) func() int {
	t.Helper()
	id := strings.TrimSpace(e.u("inspect", "-f", "{{.Id}}", name).stdout)
	path := filepath.Join(e.store, "containers", id, "diff", "tmp", file)
	return func() int {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
}

// shortID is the first 12 characters of container name's id.
func shortID(t *testing.T, e *containerEnv, name string) string {
	t.Helper()
	id := strings.TrimSpace(e.u("inspect", "-f", "{{.Id}}", name).stdout)
	if len(id) < 12 {
		t.Fatalf("inspect %s: id %q", name, id)
	}
	return id[:12]
}
