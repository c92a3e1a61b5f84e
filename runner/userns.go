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
	"strconv"
	"strings"
	"syscall"

	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/reexec"
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
	pid, err := holder(ids)
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
	if os.Getenv("XDG_RUNTIME_DIR") == "" {
		// Inside, the caller is uid 0: without this its pid files would go
		// to the directory every user's namespace shares (unionfuse-0).
		own := daemon.PidDir() // the caller's own, /tmp/unionfuse-UID
		if err := os.MkdirAll(own, 0o700); err == nil {
			env = append(env, "XDG_RUNTIME_DIR="+own)
		}
	}
	return syscall.Exec(nsenter, append(argv, args[1:]...), env)
}

// holder returns the pid of the process holding the namespaces, starting
// one if there is none (under a lock, so two commands start one).
func holder(ids subIDs) (int, error) {
	dir := daemon.PidDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	path := filepath.Join(dir, "userns.pid")
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return 0, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return 0, err
	}
	if b, err := os.ReadFile(path); err == nil {
		var rec daemon.Record
		if _, err := fmt.Sscanf(string(b), "%d %d", &rec.PID, &rec.Start); err == nil && rec.Alive() {
			return rec.PID, nil
		}
	}
	pid, err := startHolder(ids)
	if err != nil {
		return 0, err
	}
	start, err := daemon.StartTime(pid)
	if err != nil {
		return 0, err
	}
	return pid, os.WriteFile(path, fmt.Appendf(nil, "%d %d\n", pid, start), 0o600)
}

// startHolder starts the holder in new user and mount namespaces and maps
// the caller to root and its subordinate ids to 1... in them.
func startHolder(ids subIDs) (int, error) {
	rd, wr, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	cmd := reexec.Command(reexec.UserNSHolder, "unionfuse-userns", nil)
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{rd} // fd 3: closed once the maps are written
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS, Setsid: true}
	if err := cmd.Start(); err != nil {
		wr.Close()
		return 0, err
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
			return 0, fmt.Errorf("%s: %v: %s", m[0], err, strings.TrimSpace(string(out)))
		}
	}
	wr.Close()
	holderPid := cmd.Process.Pid
	return holderPid, cmd.Process.Release() // Release sets Pid to -1
}

// runUserNSHolder is the main function of the holder of the rootless user
// namespace: it waits until its maps are written, then holds its
// namespaces until SIGTERM or SIGINT.
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
	<-ch
	return 0
}
