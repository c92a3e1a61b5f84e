package unionserver

import "github.com/unionfuse/unionfuse/fs"

// opMount is the one operation of a request: unmounting needs no server
// (see Detach).
const opMount = "mount"

// request is one message from a client.
type request struct {
	// Op is opMount.
	Op string
	// Merged is the union's mountpoint: an absolute, clean path under the
	// server's root.
	Merged string
	// Config is the union to mount (opMount). Its Logger, OnIdle and
	// Fetchers do not pass: the server sets its own.
	Config fs.Config `json:",omitempty"`
	// New asks for a new union where nothing is mounted yet: a busy
	// mountpoint is refused (by fs.Mount), as a daemon refuses it. The
	// command line's request (Client.MountNew). Without it a request is
	// idempotent for its root's only client (the snapshotter): a union
	// the server serves there is kept, and anything else mounted there is
	// taken for a dead server's union and detached.
	New bool `json:",omitempty"`
}

// response answers one request.
type response struct {
	// Error is the failure in one line, "" for success.
	Error string `json:",omitempty"`
}
