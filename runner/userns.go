package runner

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/reexec"
	"github.com/unionfuse/unionfuse/internal/usernsref"
	"golang.org/x/sys/unix"
)

// Rootless with subordinate ids, as rootless podman: when the caller has
// ranges in /etc/subuid and /etc/subgid and newuidmap/newgidmap are
// installed, store and container commands run inside one user namespace
// per user where the caller is root and its subordinate ids are the other
// users, so images that own files as other users work and -u takes them.
// A holder process (the "pause" process) keeps that namespace and a mount
// namespace; each command re-executes itself into both with nsenter(1),
// so the FUSE mounts, the containers and the files of every id are
// reachable by the next command. Without subordinate ids, containers map
// only the caller (see startInit).

// envUserNS is set once a command runs inside; the holder is the
// reexec.UserNSHolder role.
const envUserNS = "UNIONFUSE_IN_USERNS"

// subIDs is a user's subordinate ranges.
type subIDs struct {
	uid, uidCount, gid, gidCount int
}

// lookupSubIDs returns the caller's ranges; ok is false when it has none
// (or newuidmap/newgidmap are missing).
func lookupSubIDs() (subIDs, bool) {
	for _, tool := range []string{"newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			return subIDs{}, false
		}
	}
	names := []string{strconv.Itoa(os.Getuid())}
	if u, err := user.LookupId(names[0]); err == nil {
		names = append(names, u.Username)
	}
	var s subIDs
	var ok1, ok2 bool
	s.uid, s.uidCount, ok1 = subRange("/etc/subuid", names)
	s.gid, s.gidCount, ok2 = subRange("/etc/subgid", names)
	return s, ok1 && ok2
}

// subRange finds the first NAME:START:COUNT line of file for one of names.
func subRange(file string, names []string) (start, count int, ok bool) {
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(fields) != 3 {
			continue
		}
		for _, n := range names {
			if fields[0] != n {
				continue
			}
			start, err1 := strconv.Atoi(fields[1])
			count, err2 := strconv.Atoi(fields[2])
			if err1 == nil && err2 == nil && count > 0 {
				return start, count, true
			}
		}
	}
	return 0, 0, false
}

// EnterUserNamespace re-executes this command (args: os.Args) inside the
// caller's rootless user namespace when the caller is not root and has
// subordinate ids; on success it does not return. It returns nil, having
// done nothing, for root, for a caller without subordinate ids, and inside
// the namespace already.
func EnterUserNamespace(args []string) error {
	if os.Geteuid() == 0 || os.Getenv(envUserNS) != "" {
		return nil
	}
	ids, ok := lookupSubIDs()
	if !ok {
		return nil
	}
	pid, ref, err := holder(ids)
	if err != nil {
		return fmt.Errorf("rootless user namespace: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return fmt.Errorf("rootless user namespace: %w", err)
	}
	wd, err := os.Getwd()
	if err != nil {
		wd = "/"
	}
	argv := []string{"nsenter", "--target", strconv.Itoa(pid), "--user", "--mount", "--wd=" + wd, "--", exe}
	env := append(os.Environ(), envUserNS+"=1")
	if ref != nil {
		// The command holds the namespace while it runs (usernsref).
		kept, err := usernsref.KeepAcrossExec(ref)
		if err != nil {
			return fmt.Errorf("rootless user namespace: %w", err)
		}
		env = append(env, kept)
	}
	if os.Getenv("XDG_RUNTIME_DIR") == "" {
		// Inside, the caller is uid 0: without this its pid files would go
		// to the directory every user's namespace shares (unionfuse-0).
		own := daemon.PidDir() // the caller's own, /tmp/unionfuse-UID
		if err := os.MkdirAll(own, 0o700); err == nil {
			env = append(env, "XDG_RUNTIME_DIR="+own)
		}
	}
	err = syscall.Exec(nsenter, append(argv, args[1:]...), env)
	runtime.KeepAlive(ref) // its finalizer would close the descriptor nsenter is to inherit
	return err
}

// holder returns the pid of the process holding the namespaces, starting
// one if there is none (under a lock, so two commands start one), and a
// reference to it that keeps it while this command runs (nil from a
// holder of an older version, which takes none).
func holder(ids subIDs) (int, *os.File, error) {
	dir := daemon.PidDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, nil, err
	}
	path := filepath.Join(dir, "userns.pid")
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return 0, nil, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return 0, nil, err
	}
	refs := filepath.Join(dir, "userns.ref")
	if b, err := os.ReadFile(path); err == nil {
		var rec daemon.Record
		if _, err := fmt.Sscanf(string(b), "%d %d", &rec.PID, &rec.Start); err == nil && rec.Alive() {
			// Taken under the lock, which the holder takes to leave.
			ref, _ := os.OpenFile(refs, os.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			return rec.PID, ref, nil
		}
	}
	pid, ref, err := startHolder(ids, path, refs)
	if err != nil {
		return 0, nil, err
	}
	start, err := daemon.StartTime(pid)
	if err != nil {
		ref.Close()
		return 0, nil, err
	}
	if err := os.WriteFile(path, fmt.Appendf(nil, "%d %d\n", pid, start), 0o600); err != nil {
		ref.Close()
		return 0, nil, err
	}
	return pid, ref, nil
}

// startHolder starts the holder in new user and mount namespaces and maps
// the caller to root and its subordinate ids to 1... in them. pidFile is
// where commands find it (it cannot compute the path: it is root in
// there); refs is the FIFO whose read end it gets, and whose write end,
// returned, is the first reference to it.
func startHolder(ids subIDs, pidFile, refs string) (int, *os.File, error) {
	os.Remove(refs)
	if err := unix.Mkfifo(refs, 0o600); err != nil {
		return 0, nil, fmt.Errorf("holder's FIFO: %w", err)
	}
	readEnd, err := os.OpenFile(refs, os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("holder's FIFO: %w", err)
	}
	defer readEnd.Close()
	rd, wr, err := os.Pipe()
	if err != nil {
		return 0, nil, err
	}
	defer rd.Close()
	cmd := reexec.Command(reexec.UserNSHolder, "unionfuse-userns", nil, pidFile)
	cmd.Dir = "/"
	// fd 3: closed once the maps are written; fd 4: the references.
	cmd.ExtraFiles = []*os.File{rd, readEnd}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS, Setsid: true}
	if err := cmd.Start(); err != nil {
		wr.Close()
		return 0, nil, err
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	maps := [][]string{
		{"newuidmap", pid, "0", strconv.Itoa(os.Getuid()), "1", "1", strconv.Itoa(ids.uid), strconv.Itoa(ids.uidCount)},
		{"newgidmap", pid, "0", strconv.Itoa(os.Getgid()), "1", "1", strconv.Itoa(ids.gid), strconv.Itoa(ids.gidCount)},
	}
	for _, m := range maps {
		if out, err := exec.Command(m[0], m[1:]...).CombinedOutput(); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			wr.Close()
			return 0, nil, fmt.Errorf("%s: %v: %s", m[0], err, strings.TrimSpace(string(out)))
		}
	}
	// The read ends are open (here and in the holder): this cannot block.
	ref, err := os.OpenFile(refs, os.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		wr.Close()
		return 0, nil, fmt.Errorf("holder's FIFO: %w", err)
	}
	wr.Close()
	holderPid := cmd.Process.Pid
	return holderPid, ref, cmd.Process.Release() // Release sets Pid to -1
}

// runUserNSHolder is the main function of the holder of the rootless user
// namespace: it waits until its maps are written, then holds its
// namespaces until SIGTERM or SIGINT, or until no process has held a
// reference to it (usernsref) for holderIdle.
func runUserNSHolder() int {
	ready := os.NewFile(3, "ready")
	b := make([]byte, 1)
	ready.Read(b) // EOF once the maps are written
	ready.Close()
	// Mounts made by commands in here stay in here.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil && !errors.Is(err, unix.EPERM) {
		fmt.Fprintln(os.Stderr, "unionfuse-userns:", err)
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	idle := make(chan struct{})
	if len(os.Args) > 1 {
		if _, err := unix.FcntlInt(4, unix.F_GETFD, 0); err == nil {
			go func() {
				waitIdle(4, os.Args[1])
				close(idle)
			}()
		}
	}
	select {
	case <-ch:
	case <-idle:
	}
	return 0
}

// holderIdle is how long the holder stays once the last reference to it
// is gone: consecutive commands find the same one.
const holderIdle = 5 * time.Second

// waitIdle returns once the holder may end: no reference to it is left
// (refs, the read end of its FIFO, reports POLLHUP), still none after
// holderIdle, and none under the lock commands take to find the holder,
// having removed pidFile, the record by which they find it.
func waitIdle(refs int, pidFile string) {
	for {
		fds := []unix.PollFd{{Fd: int32(refs), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			select {} // cannot tell: hold on until a signal
		}
		if fds[0].Revents&unix.POLLHUP == 0 {
			// Nobody writes; should anyone, the data is dropped.
			buf := make([]byte, 512)
			unix.Read(refs, buf)
			continue
		}
		time.Sleep(holderIdle)
		if leave(refs, pidFile) {
			return
		}
	}
}

// leave removes the holder's record (pidFile) and reports true when no
// reference is held, checked under the lock commands take to find the
// holder and take their reference: one that finds it after this sees no
// record and starts another holder.
func leave(refs int, pidFile string) bool {
	lock, err := os.OpenFile(pidFile+".lock", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return true // no record to keep right: nobody can find this holder
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return false
	}
	fds := []unix.PollFd{{Fd: int32(refs), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 0); err != nil || n == 0 || fds[0].Revents&unix.POLLHUP == 0 {
		return false // a reference came
	}
	if b, err := os.ReadFile(pidFile); err == nil && strings.HasPrefix(string(b), strconv.Itoa(os.Getpid())+" ") {
		os.Remove(pidFile)
	}
	return true
}
