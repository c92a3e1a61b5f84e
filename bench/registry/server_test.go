package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary a bench that starts a registry, prints
// its pid and waits to be killed (TestRegistryDiesWithBench).
const helperEnv = "UFREGBENCH_TEST_REGISTRY_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		r, err := startRegistry(dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(r.cmd.Process.Pid)
		select {}
	}
	os.Exit(m.Run())
}

// TestRegistryDiesWithBench: a docker-registry the bench started ends when
// the bench is killed (SIGKILL gives it no chance to stop it), within a
// second; it was left running.
func TestRegistryDiesWithBench(t *testing.T) {
	if _, err := exec.LookPath("docker-registry"); err != nil {
		t.Skip("needs docker-registry (make deps installs it)")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		cmd.Process.Kill()
		t.Fatal("the helper printed nothing")
	}
	pid, err := strconv.Atoi(sc.Text())
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("helper: %s", sc.Text())
	}
	cmd.Process.Kill()
	deadline := time.Now().Add(time.Second)
	for syscall.Kill(pid, 0) == nil {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); len(b) > 0 && isZombie(string(b)) {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("docker-registry %d still runs a second after its bench was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// isZombie reports whether a /proc/PID/stat line is a zombie's.
func isZombie(stat string) bool {
	for i := len(stat) - 1; i > 0; i-- {
		if stat[i] == ')' {
			return len(stat) > i+2 && stat[i+2] == 'Z'
		}
	}
	return false
}
