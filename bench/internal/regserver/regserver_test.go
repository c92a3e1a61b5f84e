package regserver

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
		r, err := Start(dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(r.Pid())
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

// TestLimiterHoldsTheRate: 2 MB written at 10 MB/s take at least 0.2 s
// less one write's slot (the first write goes at once); without a limit
// they do not wait.
func TestLimiterHoldsTheRate(t *testing.T) {
	var l limiter
	l.setRate(10e6)
	start := time.Now()
	for i := 0; i < 64; i++ {
		l.wait(32 << 10)
	}
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Errorf("2 MiB at 10 MB/s took %v, want at least 0.2 s", d)
	}
	l.setRate(0)
	start = time.Now()
	for i := 0; i < 64; i++ {
		l.wait(32 << 10)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("without a limit 64 writes waited %v", d)
	}
}
