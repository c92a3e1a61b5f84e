package tests

// Issue 15's container life cycle end to end: logs with stdout and
// stderr apart, exec -w/-d/--env-file, create/start/attach, rename,
// --restart, --init, --label, --stop-signal, --cidfile and events.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLifecycle(t *testing.T) {
	mode := requireContainers(t, false, false)
	subtest := func(name string, f func(t *testing.T, e *containerEnv)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, newContainerEnv(t, mode))
		})
	}

	subtest("logs keep stderr apart", func(t *testing.T, e *containerEnv) {
		script := "echo out1; echo err1 >&2; sleep 0.2; echo out2" // out2 logged last
		expect(t, "run", e.u("run", "--name", "fg", "busybox", "sh", "-c", script), 0, "out1\nout2\n", "err1\n")
		expect(t, "logs fg", e.u("logs", "fg"), 0, "out1\nout2\n", "err1\n")
		mustSucceed(t, "run -d", e.u("run", "-d", "--name", "bg", "busybox", "sh", "-c", script))
		expect(t, "wait", e.u("wait", "bg"), 0, "0\n", "")
		expect(t, "logs bg", e.u("logs", "bg"), 0, "out1\nout2\n", "err1\n")
		expect(t, "logs --tail 1", e.u("logs", "--tail", "1", "bg"), 0, "out2\n", "")
		expect(t, "logs --tail all", e.u("logs", "--tail", "all", "bg"), 0, "out1\nout2\n", "err1\n")
		expect(t, "logs --since 1h", e.u("logs", "--since", "1h", "bg"), 0, "out1\nout2\n", "err1\n")
		expect(t, "logs --until 1h", e.u("logs", "--until", "1h", "bg"), 0, "", "")
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		expect(t, "logs --since future", e.u("logs", "--since", future, "bg"), 0, "", "")
		if r := e.u("logs", "-t", "--tail", "1", "bg"); r.code != 0 || !strings.HasSuffix(r.stdout, "Z out2\n") {
			t.Errorf("logs -t: %+v", r)
		}
	})

	subtest("exec -w -d --env-file", func(t *testing.T, e *containerEnv) {
		mustSucceed(t, "run -d", e.u("run", "-d", "--name", "up", "busybox", "sleep", "60"))
		defer e.u("rm", "-f", "up")
		expect(t, "exec -w", e.u("exec", "-w", "/tmp", "up", "pwd"), 0, "/tmp\n", "")
		envFile := filepath.Join(e.dir, "env")
		os.WriteFile(envFile, []byte("# comment\nA=1\nB=2\n"), 0o644)
		expect(t, "exec --env-file", e.u("exec", "--env-file", envFile, "up", "sh", "-c", "echo $A$B"), 0, "12\n", "")
		expect(t, "exec -d", e.u("exec", "-d", "up", "sh", "-c", "echo hi > /tmp/d"), 0, "", "")
		waitFor(t, func() bool { return e.u("exec", "up", "cat", "/tmp/d").stdout == "hi\n" })
		mustSucceed(t, "run", e.u("run", "--name", "down", "busybox", "true"))
		expect(t, "exec stopped", e.u("exec", "down", "true"), 1, "", "is not running")
	})

	subtest("create start attach rename", func(t *testing.T, e *containerEnv) {
		mustSucceed(t, "create", e.u("create", "--name", "c1", "busybox", "sh", "-c", "echo o; echo e >&2; exit 2"))
		expect(t, "start -a", e.u("start", "-a", "c1"), 2, "o\n", "e\n")
		expect(t, "rename", e.u("rename", "c1", "c2"), 0, "", "")
		expect(t, "inspect renamed", e.u("inspect", "-f", "{{.Name}}", "c2"), 0, "/c2\n", "")
		mustSucceed(t, "run -d", e.u("run", "-d", "--name", "talker", "busybox", "sh", "-c", "sleep 1; echo later; echo bad >&2; exit 6"))
		expect(t, "attach", e.u("attach", "talker"), 6, "later\n", "bad\n")
	})

	subtest("restart on-failure:2", func(t *testing.T, e *containerEnv) {
		mustSucceed(t, "run -d", e.u("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo try; exit 3"))
		waitFor(t, func() bool {
			return e.u("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "flaky").stdout == "2 exited\n"
		})
		time.Sleep(time.Second) // no third restart
		expect(t, "inspect", e.u("inspect", "-f", "{{.RestartCount}} {{.State.ExitCode}} {{.HostConfig.RestartPolicy.Name}}", "flaky"), 0, "2 3 on-failure\n", "")
		expect(t, "logs", e.u("logs", "flaky"), 0, "try\ntry\ntry\n", "")
		expect(t, "--restart with --rm", e.u("run", "--rm", "--restart", "always", "busybox", "true"), 125, "", "conflicting options")
	})

	subtest("init reaps zombies", func(t *testing.T, e *containerEnv) {
		// The orphaned sleep is re-parented to pid 1: a plain sleep as pid
		// 1 leaves it a zombie, the init reaps it.
		script := `sh -c "sleep 0.1 &"; exec sleep 30`
		for _, init := range []bool{true, false} {
			args := []string{"run", "-d", "busybox", "sh", "-c", script}
			if init {
				args = []string{"run", "-d", "--init", "busybox", "sh", "-c", script}
			}
			r := e.u(args...)
			mustSucceed(t, "run -d", r)
			id := strings.TrimSpace(r.stdout)
			time.Sleep(time.Second)
			ps := e.u("exec", id, "ps", "-o", "stat,comm")
			zombie := strings.Contains(ps.stdout, "Z ")
			if zombie == init {
				t.Errorf("--init=%v: ps:\n%s", init, ps.stdout)
			}
			expect(t, "stop", e.u("stop", "-t", "1", id), 0, id+"\n", "")
		}
		expect(t, "exit status through init", e.u("run", "--rm", "--init", "busybox", "sh", "-c", "exit 4"), 4, "", "")
	})

	subtest("label stop-signal cidfile", func(t *testing.T, e *containerEnv) {
		cid := filepath.Join(e.dir, "cid")
		r := e.u("run", "-d", "--cidfile", cid, "--name", "lab", "--label", "tier=web", "--stop-signal", "USR1", "busybox",
			"sh", "-c", "trap 'echo usr1; exit 0' USR1; echo trapped; while :; do sleep 0.1; done")
		mustSucceed(t, "run", r)
		// The stop signal must find the trap set: the shell is its pid
		// namespace's init, and the kernel drops a signal an init does not
		// handle.
		waitFor(t, func() bool { return e.u("logs", "lab").stdout == "trapped\n" })
		if b, _ := os.ReadFile(cid); string(b) != strings.TrimSpace(r.stdout) {
			t.Errorf("cidfile holds %q, want %q", b, r.stdout)
		}
		expect(t, "existing cidfile", e.u("run", "--cidfile", cid, "busybox", "true"), 125, "", "container ID file found")
		expect(t, "inspect", e.u("inspect", "-f", "{{json .Config.Labels}} {{.Config.StopSignal}}", "lab"), 0, `{"tier":"web"} USR1`+"\n", "")
		expect(t, "ps --filter label", e.u("ps", "--filter", "label=tier=web", "--format", "{{.Names}} {{.Labels}}"), 0, "lab tier=web\n", "")
		expect(t, "ps --filter other label", e.u("ps", "--filter", "label=tier=db", "--format", "{{.Names}}"), 0, "", "")
		expect(t, "stop", e.u("stop", "lab"), 0, "lab\n", "")
		expect(t, "logs", e.u("logs", "lab"), 0, "trapped\nusr1\n", "")
	})

	subtest("commit -c and import -c -m", func(t *testing.T, e *containerEnv) {
		mustSucceed(t, "run", e.u("run", "--name", "base", "busybox", "true"))
		mustSucceed(t, "commit -c", e.u("commit", "-c", `CMD ["x"]`, "-c", "ENV Z=1", "-c", "WORKDIR /srv", "base", "changed:1"))
		expect(t, "inspect", e.u("inspect", "-f", "{{json .Config.Cmd}} {{.Config.WorkingDir}}", "changed:1"), 0, `["x"] /srv`+"\n", "")
		expect(t, "commit -c RUN", e.u("commit", "-c", "RUN true", "base"), 1, "", "RUN is not a valid change command")
		archive := filepath.Join(e.dir, "root.tar")
		mustSucceed(t, "export", e.u("export", "-o", archive, "base"))
		mustSucceed(t, "import", e.u("import", "-m", "from base", "-c", `ENTRYPOINT ["/bin/echo"]`, "-c", "LABEL k=v", archive, "imported:1"))
		expect(t, "inspect imported", e.u("inspect", "-f", "{{json .Config.Entrypoint}} {{.Config.Labels.k}}", "imported:1"), 0, `["/bin/echo"] v`+"\n", "")
		expect(t, "run imported", e.u("run", "--rm", "imported:1", "hi"), 0, "hi\n", "")
		if r := e.u("history", "--format", "{{.Comment}}", "imported:1"); r.stdout != "from base\n" {
			t.Errorf("history: %+v", r)
		}
	})

	subtest("events", func(t *testing.T, e *containerEnv) {
		expect(t, "run", e.u("run", "--name", "ev", "busybox", "sh", "-c", "exit 2"), 2, "", "")
		expect(t, "events", e.u("events", "--since", "1h", "--until", "0s", "--filter", "container=ev", "--format", "{{.Action}}{{with .Actor.Attributes.exitCode}} {{.}}{{end}}"),
			0, "create\nstart\ndie 2\n", "")
		follow := e.command("events", "--filter", "event=start", "--format", "{{.Actor.Attributes.name}}")
		var out strings.Builder
		follow.Stdout = &out
		if err := follow.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		mustSucceed(t, "run", e.u("run", "--name", "live", "busybox", "true"))
		time.Sleep(500 * time.Millisecond)
		follow.Process.Kill()
		follow.Wait()
		if out.String() != "live\n" {
			t.Errorf("events followed: %q", out.String())
		}
	})
}
