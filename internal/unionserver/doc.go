// Package unionserver serves many union mounts from one long-running
// process, so that a program which mounts unions often (the containerd
// snapshotter: every container start; the mount commands with -o
// server=, podman's mount program) pays one request on a unix socket per
// union instead of the start of a process per union, and one Go runtime
// for all of them.
//
// Roles, by process:
//
//	client  the program that wants unions (Client): it connects to the
//	        server of its root, starting one when none listens, and asks
//	        it to mount unions under that root; it unmounts them itself
//	        (Detach), and the server notices.
//	server  a process in the union-server role (see internal/reexec),
//	        started by a Client in a session of its own, so that it and
//	        the unions it serves outlive the client: a snapshotter that
//	        restarts finds its unions still served. It mounts each union
//	        with fs.Mount and serves it until it is unmounted.
//
// One server serves one root (the directory its unions are mounted
// under; it refuses mountpoints outside it, and any that would hide its
// socket) in one mount and user namespace, and listens on a socket named
// by a hash of that root (and of the namespaces, outside init's) in the
// run directory (SocketPath), accepting only connections from its own
// user. It holds a lock while it listens, so two servers never serve one
// root in the same namespaces. It exits once it has served no
// union and had no client for a moment (IdleExit), and on SIGTERM, SIGINT
// or SIGHUP it stops listening, detaches its unions lazily and exits when
// their last users have left.
//
// The protocol is a stream of JSON objects on the connection: a mount
// request, then its response, in turn. Mount (the snapshotter's, which
// owns its root) is idempotent: a union already served at the mountpoint
// is kept; one this server does not serve is a union of a server that
// was killed (one server serves a root at a time), and is detached and
// mounted anew. MountNew (the command line's, whose root other mounts
// share) mounts only where nothing is mounted, as a daemon does.
//
// This is the design of stargz-snapshotter's FUSE manager: the mounts of
// a snapshotter live in a process of their own that survives the
// snapshotter's restarts.
package unionserver
