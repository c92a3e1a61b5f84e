package mountcmd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/unionfuse/unionfuse/fs"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/unionserver"
)

// checkServed refuses the flags that need a process of the union's own
// with -o server=: the union server serves it, logs for all its unions
// and profiles none.
func (a *Args) checkServed() error {
	switch {
	case a.InForeground():
		return errors.New("-o server serves the union in the union server: -f and -d do not apply")
	case a.Profiles.CPU != "" || a.Profiles.Mem != "":
		return errors.New("-o server serves the union in the union server: --cpuprofile and --memprofile do not apply")
	}
	return nil
}

// startInServer has the union server of root (started when none runs in
// this mount namespace) mount cfg at merged, which must be below root
// and not a mountpoint yet (as for a daemon), and returns once the union
// is visible there. logFile is where a server started now logs
// ("" for syslog or the default log).
func startInServer(root, merged string, cfg fs.Config, logFile string) error {
	spec, err := daemon.Absolute(daemon.Spec{Merged: merged, Config: cfg, LogFile: logFile})
	if err != nil {
		return err
	}
	// Both resolved, so that one directory spelled two ways has one
	// server and is found below it.
	resolved, err := filepath.EvalSymlinks(root)
	if err != nil {
		return fmt.Errorf("union server root: %w", err)
	}
	if resolved, err = filepath.Abs(resolved); err != nil {
		return fmt.Errorf("union server root %s: %w", root, err)
	}
	if st, err := os.Stat(resolved); err != nil {
		return fmt.Errorf("union server root: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("union server root %s: not a directory", root)
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(spec.Merged))
	if err != nil {
		return fmt.Errorf("mountpoint: %w", err)
	}
	bin, err := serverBinary()
	if err != nil {
		return err
	}
	c := unionserver.NewClient(resolved, spec.LogFile, bin)
	defer c.Close()
	return c.MountNew(filepath.Join(parent, filepath.Base(spec.Merged)), spec.Config)
}

// serverBinary is the program a union server is started from: the small
// binary beside this one (unionfuse-fuse beside unionfuse), else this one,
// which has the role too (both import internal/unionserver).
func serverBinary() (string, error) {
	if helper := daemon.Helper(); helper != "" {
		return helper, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("union server: %w", err)
	}
	return exe, nil
}
