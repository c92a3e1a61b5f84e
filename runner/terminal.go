package runner

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// makeTerminal, in the init after pivot_root, opens a pseudo-terminal in
// the container's devpts, gives it size (when not nil), sends its master
// to the monitor over ttyFD and makes the slave the init's controlling
// terminal and stdio.
func makeTerminal(size *pty.Winsize) error {
	sock := os.NewFile(ttyFD, "terminal")
	defer sock.Close()
	master, slave, err := pty.Open()
	if err != nil {
		return err
	}
	defer slave.Close()
	if size != nil {
		// Before the command starts: one that asks at once (stty size)
		// must not see 0x0 while the monitor's resize is on its way.
		if err := pty.Setsize(master, size); err != nil {
			master.Close()
			return fmt.Errorf("set the terminal's size: %w", err)
		}
	}
	err = unix.Sendmsg(int(sock.Fd()), []byte{0}, unix.UnixRights(int(master.Fd())), nil, 0)
	master.Close()
	if err != nil {
		return fmt.Errorf("send the terminal: %w", err)
	}
	// The init is a session leader (Setsid) without a terminal yet.
	if err := unix.IoctlSetInt(int(slave.Fd()), unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("TIOCSCTTY: %w", err)
	}
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(int(slave.Fd()), fd, 0); err != nil {
			return err
		}
	}
	return nil
}

// callerTerminalSize returns the size of stdin when it is a terminal, nil
// otherwise: what a new terminal for the container starts with.
func callerTerminalSize(stdin io.Reader) *pty.Winsize {
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	size, err := pty.GetsizeFull(f)
	if err != nil {
		return nil
	}
	return size
}

// receiveFile receives one descriptor sent with makeTerminal; nil without
// an error when the other side closed first.
func receiveFile(sock *os.File) (*os.File, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("receive the terminal: %w", err)
	}
	if n == 0 && oobn == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, errors.New("receive the terminal: malformed message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, errors.New("receive the terminal: no descriptor")
	}
	return os.NewFile(uintptr(fds[0]), "terminal"), nil
}

// openContainerTerminal opens a new pseudo-terminal in the devpts of the
// container whose init is pid, so that a command joining the container has
// a terminal it can name there (/dev/pts/N, what tty(1) prints), as with
// `docker exec -t`. The path is resolved inside the container's root: a
// symbolic link there cannot lead to the host's files. Where that fails (a
// container without its own devpts) the terminal is one of the host's,
// which works the same but has no name in the container.
func openContainerTerminal(pid int) (master, slave *os.File, err error) {
	master, slave, err = containerPty(pid)
	if err == nil {
		return master, slave, nil
	}
	return pty.Open()
}

// containerPty opens dev/pts/ptmx below /proc/PID/root and the slave of
// the terminal it makes (TIOCGPTPEER: no path needed).
func containerPty(pid int) (master, slave *os.File, err error) {
	root, err := unix.Open(fmt.Sprintf("/proc/%d/root", pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, "dev/pts/ptmx", &unix.OpenHow{
		Flags:   unix.O_RDWR | unix.O_NOCTTY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, nil, err
	}
	m := os.NewFile(uintptr(fd), "/dev/ptmx")
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 5 || unix.Minor(st.Rdev) != 2 {
		m.Close()
		return nil, nil, errors.New("dev/pts/ptmx is not a terminal multiplexer")
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlock the terminal: %w", err)
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		m.Close()
		return nil, nil, fmt.Errorf("open the terminal: %w", errno)
	}
	return m, os.NewFile(sfd, "/dev/pts"), nil
}
