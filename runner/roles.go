package runner

import (
	"runtime"

	"github.com/unionfuse/unionfuse/internal/reexec"
)

// The processes of the runner that are this binary started again, each in
// its role (see internal/reexec for the list of every role):
//
//	reexec.ContainerInit  runInit (init.go), started by startInit
//	reexec.Monitor        runMonitor (monitor.go), by StartDetached
//	reexec.UserNSHolder   runUserNSHolder (userns.go), by EnterUserNamespace
//	reexec.Exporter       runExporter (export.go), by Export
//	reexec.SocketHelper   runSocketHelper (ports.go), by startSocketHelper
//	reexec.Copier         runCopier (cp.go), by ContainerRoot's methods
func init() {
	reexec.Register(reexec.ContainerInit, runInit)
	reexec.Register(reexec.Monitor, runMonitor)
	reexec.Register(reexec.UserNSHolder, runUserNSHolder)
	reexec.Register(reexec.Exporter, runExporter)
	reexec.Register(reexec.SocketHelper, runSocketHelper)
	reexec.Register(reexec.Copier, runCopier)
	if reexec.Current() == reexec.ContainerInit {
		// Capabilities, the parent-death signal and the bounding set are
		// per thread: the init sets them on the thread that execs the
		// command, the main one (locked here, before main runs).
		runtime.LockOSThread()
	}
}
