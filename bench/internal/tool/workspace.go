package tool

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
)

// Workspace checks that the tools a benchmark runs are installed and
// makes its workspace: a new directory named prog-* under dir, with the
// commands' output logged to tools.log in it (Log). close ends the log.
func Workspace(dir, prog string, tools []string) (ws string, close func(), err error) {
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return "", nil, fmt.Errorf("%s is missing (make deps installs it)", t)
		}
	}
	if ws, err = os.MkdirTemp(dir, prog+"-"); err != nil {
		return "", nil, err
	}
	f, err := os.Create(filepath.Join(ws, "tools.log"))
	if err != nil {
		os.RemoveAll(ws)
		return "", nil, err
	}
	Log = f
	return ws, func() { Log = nil; f.Close() }, nil
}

// OnInterrupt runs stop, saying so (what), and exits 130 when the
// benchmark is interrupted or terminated: its registries and daemons
// must not outlive it.
func OnInterrupt(prog, what string, stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		<-sigs
		fmt.Fprintf(os.Stderr, "\n%s: interrupted: %s\n", prog, what)
		stop()
		os.Exit(130)
	}()
}
