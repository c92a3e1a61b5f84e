// Package daemon runs a union mount in the background and finds it again.
//
// Roles, by process:
//
//	parent   unionfuse mount ...: validates, then Start starts the small
//	         binary unionfuse-fuse beside this one (see Helper), or else
//	         re-executes /proc/self/exe, in the daemon role (see
//	         internal/reexec), and waits on a pipe until the daemon reports "mounted" or its
//	         one-line error.
//	daemon   the child, in its own session, stdin/stdout/stderr on
//	         /dev/null: runDaemon mounts with fs.Mount, writes the pid file,
//	         reports readiness, serves until the union is unmounted
//	         (SIGTERM/SIGINT, unionfuse umount, umount(8), fusermount3 -u),
//	         removes the pid file and exits.
//	umount   unionfuse umount: Unmount detaches the union and
//	         WaitUnmounted waits, bounded, for exactly the PID recorded in
//	         the pid file, telling it to stop if copies of the mount in
//	         other mount namespaces keep it serving (wait.go).
//
// Pid files live in /run/unionfuse for root (not root of a user namespace), else in
// $XDG_RUNTIME_DIR/unionfuse or $TMPDIR/unionfuse-UID, one per mountpoint,
// named by a hash of the mountpoint's absolute, symlink-resolved path.
// Processes are only ever found through these files, never by name.
package daemon
