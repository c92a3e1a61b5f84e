package tests

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// soakEnv names the environment variable that sets how long the soak's
// workers run (a Go duration; 0 skips the soak); make test runs it for
// soakDefault.
const (
	soakEnv     = "UNIONFUSE_SOAK"
	soakDefault = 30 * time.Second
)

// soakWorkers is how many workers act on the mount at once.
const soakWorkers = 6

// raceBinary builds cmd/unionfuse with the race detector into a fresh
// directory of t's and returns its path.
func raceBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "unionfuse-race")
	cmd := exec.Command("go", "build", "-race", "-o", bin, "../cmd/unionfuse")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build with -race (needs cgo and a C compiler): %v\n%s", err, out)
	}
	return bin
}

// soakLower fills the lower layer with what the workers copy up, rename
// and delete: files of a few sizes, in nested directories.
func soakLower(t *testing.T, dir string) {
	t.Helper()
	rng := rand.New(rand.NewSource(1))
	for _, d := range []string{"a", "a/b", "a/b/c", "d", "d/e"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{".", "a", "a/b", "a/b/c", "d", "d/e"} {
		for i := 0; i < 4; i++ {
			data := make([]byte, []int{0, 100, 5000, 200000}[i])
			rng.Read(data)
			if err := os.WriteFile(filepath.Join(dir, d, fmt.Sprintf("f%d", i)), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// soakNames are the names the workers use, few enough that they meet.
var soakNames = []string{"a", "b", "c", "d", "e", "f0", "f1", "f2", "f3", "n1", "n2"}

// soakWorker does random operations on the tree below root until stop.
// Errors that a racing tree explains (ENOENT, EEXIST, ENOTEMPTY, ...) are
// expected; an error that says the filesystem broke is returned.
type soakWorker struct {
	root string
	rng  *rand.Rand
	open []int    // descriptors held across operations
	maps [][]byte // mmapped regions held across operations
	ops  int
}

// path returns a random path of up to three names below root.
func (w *soakWorker) path() string {
	p := w.root
	for n := 1 + w.rng.Intn(3); n > 0; n-- {
		p = filepath.Join(p, soakNames[w.rng.Intn(len(soakNames))])
	}
	return p
}

// broken reports an error that no race between workers explains.
func broken(err error) bool {
	for _, e := range []error{unix.EIO, unix.ENOTCONN, unix.ECONNABORTED, unix.EBADF, unix.EFAULT, unix.ESTALE} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (w *soakWorker) step() error {
	w.ops++
	p := w.path()
	var err error
	switch w.rng.Intn(14) {
	case 0: // create and write
		data := bytes.Repeat([]byte{byte(w.rng.Intn(256))}, w.rng.Intn(20000))
		err = os.WriteFile(p, data, 0o644)
	case 1: // write into the middle of a file (a copy-up if it is below)
		var fd int
		if fd, err = unix.Open(p, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			_, err = unix.Pwrite(fd, []byte("written"), int64(w.rng.Intn(6000)))
			unix.Close(fd)
		}
	case 2: // rename, files and directories alike
		err = unix.Renameat2(unix.AT_FDCWD, p, unix.AT_FDCWD, w.path(), []uint{0, unix.RENAME_NOREPLACE, unix.RENAME_EXCHANGE}[w.rng.Intn(3)])
	case 3:
		err = unix.Unlink(p)
	case 4:
		err = unix.Rmdir(p)
	case 5:
		err = unix.Mkdir(p, 0o755)
	case 6: // hold a file open for reading, to read later
		var fd int
		if fd, err = unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			w.open = append(w.open, fd)
		}
	case 7: // map a file shared, to read later while others copy it up
		var fd int
		if fd, err = unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			var st unix.Stat_t
			if err = unix.Fstat(fd, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size > 0 {
				var m []byte
				if m, err = unix.Mmap(fd, 0, int(min(st.Size, 1<<16)), unix.PROT_READ, unix.MAP_SHARED); err == nil {
					w.maps = append(w.maps, m)
				}
			}
			unix.Close(fd)
		}
	case 8: // read what is held
		buf := make([]byte, 4096)
		for _, fd := range w.open {
			if _, err := unix.Pread(fd, buf, int64(w.rng.Intn(8000))); broken(err) {
				return fmt.Errorf("read of a held descriptor: %w", err)
			}
		}
		var sum byte
		for _, m := range w.maps {
			for i := 0; i < len(m); i += 4096 {
				sum += m[i]
			}
		}
	case 9: // let go of what is held
		w.release()
	case 10:
		err = unix.Lsetxattr(p, "user.soak", []byte(fmt.Sprint(w.ops)), 0)
	case 11:
		err = unix.Lremovexattr(p, "user.soak")
	case 12:
		_, err = os.ReadDir(p)
	case 13:
		err = unix.Truncate(p, int64(w.rng.Intn(10000)))
	}
	if broken(err) {
		return fmt.Errorf("operation on %s: %w", strings.TrimPrefix(p, w.root), err)
	}
	return nil
}

// release closes what the worker holds.
func (w *soakWorker) release() {
	for _, fd := range w.open {
		unix.Close(fd)
	}
	for _, m := range w.maps {
		unix.Munmap(m)
	}
	w.open, w.maps = nil, nil
}

// fdTargets lists what the descriptors of process pid name.
func fdTargets(pid int) string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		out = append(out, e.Name()+" -> "+target)
	}
	return strings.Join(out, "\n")
}

// TestSoak: workers do random operations on one mount served by a daemon
// built with the race detector — creates, writes, renames of files and
// directories, unlinks, copy-ups of files that other workers hold open and
// mapped, xattrs. Afterwards the daemon has not panicked, reported no data
// race, holds as many descriptors as when it started, and the kernel's
// overlayfs shows the upper directory as the union showed it.
// UNIONFUSE_SOAK=10m runs it longer.
func TestSoak(t *testing.T) {
	testutil.RequireMounts(t)
	duration := soakDefault
	if s := os.Getenv(soakEnv); s != "" {
		var err error
		if duration, err = time.ParseDuration(s); err != nil {
			t.Fatalf("%s=%q: %v", soakEnv, s, err)
		}
	}
	if duration <= 0 {
		t.Skipf("%s=0", soakEnv)
	}
	bin := raceBinary(t)
	l := newLayout(t, testDir(t), 1)
	soakLower(t, l.Lowers[0])
	start := time.Now()

	var stderr bytes.Buffer
	daemonCmd := exec.Command(bin, "mount", "-f", "-o", "lowerdir="+l.Lowers[0]+",upperdir="+l.Upper+",workdir="+l.Work+",redirect_dir=on", l.Merged)
	daemonCmd.Stderr = &stderr
	daemonCmd.Env = append(os.Environ(), "GORACE=halt_on_error=0")
	if err := daemonCmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = daemonCmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		if isMounted(l.Merged) {
			unix.Unmount(l.Merged, unix.MNT_DETACH)
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			daemonCmd.Process.Kill()
			<-exited
		}
	})
	waitMounted(t, l.Merged, exited)
	pid := daemonCmd.Process.Pid
	layers := filepath.Dir(l.Upper)
	fdsAtStart := layerFds(t, pid, layers, l.Merged)

	var wg sync.WaitGroup
	errs := make(chan error, soakWorkers)
	ops := make([]int, soakWorkers)
	deadline := time.Now().Add(duration)
	for i := 0; i < soakWorkers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			w := &soakWorker{root: l.Merged, rng: rand.New(rand.NewSource(start.UnixNano() + int64(i)))}
			defer w.release()
			for time.Now().Before(deadline) {
				if err := w.step(); err != nil {
					errs <- fmt.Errorf("worker %d: %w", i, err)
					return
				}
			}
			ops[i] = w.ops
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("seed %d: %v operations in %v", start.UnixNano(), ops, duration)

	union := mustSnapshot(t, l.Merged, snapOpts{keepXattr: mergedXattr})
	// Releases reach the daemon after close returns.
	// go-fuse keeps a pool of splice pipes: only the descriptors of the
	// layers count.
	fds := layerFds(t, pid, layers, l.Merged)
	for wait := time.Now().Add(5 * time.Second); fds != fdsAtStart && time.Now().Before(wait); fds = layerFds(t, pid, layers, l.Merged) {
		time.Sleep(50 * time.Millisecond)
	}
	if fds != fdsAtStart {
		t.Errorf("the daemon holds %d descriptors of the layers, %d when it started:\n%s", fds, fdsAtStart, fdTargets(pid))
	}
	if err := unix.Unmount(l.Merged, 0); err != nil {
		t.Fatalf("umount: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(time.Second):
		// A mount namespace created meanwhile on this machine may hold
		// a copy of the mount: told to stop, the daemon ends as
		// unionfuse umount has it do (daemon.WaitUnmounted).
		daemonCmd.Process.Signal(unix.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Fatal("the daemon still runs 30s after its unmount")
		}
	}
	out := stderr.String()
	if waitErr != nil || strings.Contains(out, "DATA RACE") || strings.Contains(out, "panic") {
		t.Errorf("daemon: %v; stderr:\n%s", waitErr, out)
	}

	checkKernelAgrees(t, l, union, start)
}

// checkKernelAgrees mounts l (unmounted) with the kernel's overlayfs and
// fails t unless it shows the tree union, which unionfuse showed;
// modification times before start are not compared.
func checkKernelAgrees(t *testing.T, l layout, union tree, start time.Time) {
	t.Helper()
	unmount, err := kernelOverlay{}.mount(l)
	if err != nil {
		t.Fatal(err)
	}
	kernel := mustSnapshot(t, l.Merged, snapOpts{keepXattr: mergedXattr})
	if err := unmount(); err != nil {
		t.Error(err)
	}
	if d := diffTrees(union, kernel, cmpOpts{mtimeCutoff: start, noNlink: true}); len(d) > 0 {
		t.Errorf("the kernel's overlayfs shows the upper otherwise than the union did (union, kernel):\n%s", strings.Join(d, "\n"))
	}
}
