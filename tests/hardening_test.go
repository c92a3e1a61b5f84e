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

	"github.com/unionfuse/unionfuse/internal/mountinfo"
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
	return waitRunning(t, cmd)
}

// waitRunning starts a build and returns once its output shows that a
// RUN step's command runs.
func waitRunning(t *testing.T, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
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
			root := busyboxStore(t)
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

// A build killed (SIGKILL) while a step's container is mounted leaves
// nothing the next store command does not clean: `images` reaps the
// step's container, its mount and its FUSE daemon, and `ps -a` shows none.
func TestBuildKilledLeavesNothing(t *testing.T) {
	t.Run("RUN", func(t *testing.T) {
		t.Parallel()
		root := busyboxStore(t)
		cmd := startBuild(t, root, "FROM busybox:latest\nRUN sleep 987660\n")
		killAndCheckReaped(t, root, cmd)
	})
	t.Run("COPY", func(t *testing.T) {
		t.Parallel()
		root := busyboxStore(t)
		ctx := t.TempDir()
		os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox:latest\nCOPY big /big\n"), 0o644)
		big, err := os.Create(filepath.Join(ctx, "big"))
		if err != nil {
			t.Fatal(err)
		}
		chunk := make([]byte, 1<<20)
		for i := range chunk {
			chunk[i] = byte(i)
		}
		for range 512 {
			big.Write(chunk)
		}
		big.Close()
		cmd := exec.Command(unionfuseBinary(t), "build", "--root", root, ctx)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			if below, _ := mountinfo.Below(filepath.Join(root, "containers")); len(below) > 0 {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatal("the COPY step's container was never mounted")
			}
			time.Sleep(2 * time.Millisecond)
		}
		killAndCheckReaped(t, root, cmd)
	})
}

// killAndCheckReaped kills the build cmd and checks that the next store
// command removes what it left.
func killAndCheckReaped(t *testing.T, root string, cmd *exec.Cmd) {
	t.Helper()
	cmd.Process.Kill()
	cmd.Wait()
	mustOK(t, "images", storeCLI(t, root, "images"))
	r := storeCLI(t, root, "ps", "-a", "-q")
	mustOK(t, "ps", r)
	if r.stdout != "" {
		t.Errorf("ps -a after a killed build: %q", r.stdout)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "containers")); len(ents) != 0 {
		t.Errorf("%d containers left after a killed build", len(ents))
	}
	if below, _ := mountinfo.Below(root); len(below) != 0 {
		t.Errorf("mounts left after a killed build: %v", below)
	}
	mustOK(t, "rmi -f", storeCLI(t, root, "rmi", "-f", "busybox:latest"))
}
