// Package runner runs containers: an image from cowcache, a copy-on-write
// layer of its own, a unionfuse mount of the two, and a process in new
// namespaces with that mount as its root.
//
// # A container on disk
//
//	<store>/containers/<id>/
//	├── config.json     what was asked (Record.Config) and the image; cowcache
//	│                   reads its ID and Image to keep the image's layers
//	├── state.json      what happened (State): created, running, exited
//	├── init/           the init layer, as Docker's <id>-init: mount points
//	│                   (proc, dev, sys) and stub /etc files, below diff/
//	├── diff/           the container's layer (an overlay upper directory)
//	├── work/           the overlay work directory
//	├── merged/         the FUSE mount while the container runs
//	├── hostname, hosts, resolv.conf   bind-mounted over the init stubs
//	├── monitor.lock    flock(2)ed by the monitor while the container runs
//	├── container-json.log  what the command wrote, as docker's json-file
//	│                   log: {"log":LINE,"stream":"stdout"|"stderr","time":T}
//	│                   a line (container.log, raw, of earlier versions)
//	└── monitor.log     a detached container's monitor's own messages
//
// Beside containers/, the store names the files for container names and
// the exit status of containers removed on exit (cowcache's layout:
// Store.ContainerNameFile, Store.ContainerExitFile).
//
// # Images
//
// Create takes its image from the store; one the store lacks is pulled
// first, as Options.Pull says, through the Puller given with WithPuller
// (FindImage decides, the Puller fetches and shows the progress: the
// command layer's, over package registry). Without a Puller nothing is
// pulled.
//
// # Processes (the parent/child split of rootlesskit)
//
// The monitor is the process that owns a running container: the
// `unionfuse run` process itself in the foreground, a re-executed
// `unionfuse` in a session of its own with -d. It starts the FUSE server
// (internal/daemon: a separate process, because a FUSE server must not
// share a process with the users of its mount), then the container's init:
// the small unionfuse-init beside the CLI (cmd/unionfuse-init, InitSuffix;
// else /proc/self/exe again), cloned into new mount, pid, uts, ipc and network
// namespaces (and a user namespace when not root, mapping the caller to
// root). The init reads its Spec from a pipe, builds the root (proc, dev,
// sys, /etc files, volumes), pivot_roots into it, takes the container's
// user and execs the command as pid 1; an error before the exec reaches
// the monitor over a close-on-exec pipe. The monitor forwards the signals
// its caller catches for the command (IO.Signals: SIGINT, SIGTERM and the
// others of ForwardedSignals), waits, records the exit status and
// unmounts. The processes that are this binary started again (the
// detached monitor, the init, the user namespace holder, the exporter,
// the socket helper) are roles of internal/reexec, registered in
// roles.go.
//
// A monitor that dies (SIGKILL) takes the container's init with it
// (PDEATHSIG) and drops monitor.lock; the next command that looks at the
// container sees the lock free, unmounts the orphaned FUSE mount lazily
// and records the container as exited. A FUSE server that dies makes the
// monitor kill the container.
package runner
