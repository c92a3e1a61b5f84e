package runner

import (
	"errors"
	"fmt"
	"os"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// makeTerminal, in the init after pivot_root, opens a pseudo-terminal in
// the container's devpts, sends its master to the monitor over ttyFD and
// makes the slave the init's controlling terminal and stdio.
func makeTerminal() error {
	sock := os.NewFile(ttyFD, "terminal")
	defer sock.Close()
	master, slave, err := pty.Open()
	if err != nil {
		return err
	}
	defer slave.Close()
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
