package tests

// Regression tests of the hardening campaign (issue 20): a build stops on
// a signal, leaves nothing behind when killed, and a container's files
// never turn into whiteouts.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startBuild starts `unionfuse build` of a context holding dockerfile and
// returns once its output shows that a RUN step's command runs.
func startBuild(t *testing.T, root, dockerfile string) *exec.Cmd {
	t.Helper()
	ctx := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(unionfuseBinary(t), "build", "--root", root, ctx)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), " ---> Running in ") {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatal("the build ended before its RUN step ran")
	return nil
}

// processesWith returns the pids whose command line contains arg.
func processesWith(arg string) []string {
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), "\x00"+arg+"\x00") {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// A build stops on SIGINT, SIGTERM or SIGHUP within the stop timeout,
// though its RUN step's command (pid 1 of its namespace) ignores the
// signal, and leaves no container, mount or process behind.
func TestBuildStopsOnSignal(t *testing.T) {
	for i, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			root := buildStore(t)
			marker := fmt.Sprint(987650 + i)
			cmd := startBuild(t, root, "FROM busybox:latest\nRUN sleep "+marker+"\n")
			cmd.Process.Signal(sig)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(25 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Errorf("the build did not stop within 25 s of %v", sig)
			}
			if code := cmd.ProcessState.ExitCode(); code == 0 || sig == syscall.SIGINT && code != 130 {
				t.Errorf("exit status %d after %v", code, sig)
			}
			if pids := processesWith(marker); len(pids) != 0 {
				t.Errorf("the step's command survives: pids %v", pids)
				for _, p := range pids {
					var pid int
					fmt.Sscan(p, &pid)
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			if ents, _ := os.ReadDir(filepath.Join(root, "containers")); len(ents) != 0 {
				t.Errorf("%d containers left after an interrupted build", len(ents))
			}
		})
	}
}
