// Package mountcmd is the mount command line that both binaries accept:
// unionfuse mount (and the fuse-overlayfs form, unionfuse -o lowerdir=...
// MERGED) and the small unionfuse-fuse binary, which podman's
// mount_program and the benchmark run so that a mount does not pay for
// the start-up of the whole CLI (see internal/daemon, Helper).
//
// It parses; the callers print, exit and catch signals.
package mountcmd

import (
	"fmt"
	"log"
	"os"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/fs"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/mountopts"
)

// Args holds the flags of a mount command line.
type Args struct {
	// Options are the -o option strings, in order.
	Options []string
	// Foreground serves in this process instead of a daemon (-f).
	Foreground bool
	// Debug logs every FUSE request (-d, implies Foreground).
	Debug bool
	// UserXattr is --userxattr (-o userxattr).
	UserXattr bool
	// LogFile is --log.
	LogFile string
	// Profiles are --cpuprofile and --memprofile.
	Profiles daemon.Profiles

	// serverRoot is the root of the union server to serve the union (-o
	// server=), set by Union; "" for a daemon of its own.
	serverRoot string
}

// AddFlags registers the flags of a mount command line on fset.
func (a *Args) AddFlags(fset *pflag.FlagSet) {
	fset.StringArrayVarP(&a.Options, "options", "o", nil, "comma-separated mount `OPTS` (see above); repeatable")
	fset.BoolVarP(&a.Foreground, "foreground", "f", false, "stay in the foreground, log to stderr")
	fset.BoolVarP(&a.Debug, "debug", "d", false, "log every FUSE operation (implies -f)")
	fset.BoolVar(&a.UserXattr, "userxattr", false, "same as -o userxattr")
	fset.StringVar(&a.LogFile, "log", "", "log to `FILE` instead of syslog or "+daemon.DefaultLogFile())
	fset.StringVar(&a.Profiles.CPU, "cpuprofile", "", "write a CPU profile of the daemon to `FILE` (for go tool pprof)")
	fset.StringVar(&a.Profiles.Mem, "memprofile", "", "write a heap profile of the daemon to `FILE` when the union is unmounted")
}

// Union builds the union's mountpoint and config from the flags and the
// positional arguments pos (LOWER[:LOWER...] [UPPER WORK] MERGED, or
// [SOURCE] MERGED with -o lowerdir=). An error is a usage error. The
// config is not validated: fs.Mount does that.
func (a *Args) Union(pos []string) (merged string, cfg fs.Config, err error) {
	options := a.Options
	if a.UserXattr {
		options = append(options[:len(options):len(options)], "userxattr")
	}
	opts, err := mountopts.Parse(options...)
	if err != nil {
		return "", cfg, err
	}
	merged, source, err := layersFromArgs(opts, pos)
	if err != nil {
		return "", cfg, err
	}
	cfg = opts.FsConfig()
	cfg.FsName = source
	cfg.Debug = a.Debug
	if opts.Server != "" {
		if err := a.checkServed(); err != nil {
			return "", cfg, err
		}
		a.serverRoot = opts.Server
	}
	return merged, cfg, nil
}

// InForeground reports whether the union is served by this process (-f
// or -d) rather than by a daemon.
func (a *Args) InForeground() bool { return a.Foreground || a.Debug }

// Start checks /dev/fuse and starts a daemon serving the union, or has
// the union server of -o server= serve it, returning once it is visible
// at merged (see daemon.Start).
func (a *Args) Start(merged string, cfg fs.Config) error {
	// fs.Mount validates (in the daemon, whose one-line error comes back
	// through daemon.Start): checking here too would only cost time.
	if err := daemon.CheckFuse(); err != nil {
		return err
	}
	if a.serverRoot != "" {
		return startInServer(a.serverRoot, merged, cfg, a.LogFile)
	}
	return daemon.Start(daemon.Spec{Merged: merged, Config: cfg, LogFile: a.LogFile, CPUProfile: a.Profiles.CPU, MemProfile: a.Profiles.Mem})
}

// Serve serves the union in this process until it is unmounted or a
// signal arrives on stop (see daemon.Serve), logging to stderr unless
// --log names a file.
func (a *Args) Serve(merged string, cfg fs.Config, stop <-chan os.Signal) error {
	if err := daemon.CheckFuse(); err != nil {
		return err
	}
	cfg.Logger = log.New(os.Stderr, "unionfuse: ", log.LstdFlags)
	if a.LogFile != "" {
		logger, closer, err := daemon.OpenLog(a.LogFile)
		if err != nil {
			return err
		}
		defer closer.Close()
		cfg.Logger = logger
	}
	return daemon.Serve(merged, cfg, a.Profiles, stop, nil)
}

// layersFromArgs completes opts with the layers given as arguments and
// returns the mountpoint and the source word (empty for the default).
func layersFromArgs(opts *mountopts.Options, pos []string) (merged, source string, err error) {
	if len(opts.Lowers) > 0 {
		switch len(pos) {
		case 1:
			return pos[0], "", nil
		case 2:
			return pos[1], pos[0], nil
		}
		return "", "", fmt.Errorf("with -o lowerdir= give only [SOURCE] MERGED, not %d arguments", len(pos))
	}
	if opts.Upper != "" {
		return "", "", fmt.Errorf("-o upperdir= needs -o lowerdir= as well")
	}
	switch {
	case len(pos) == 0 || pos[0] == "":
		return "", "", fmt.Errorf("no lower layer given")
	case len(pos) == 2 || len(pos) == 4:
	default:
		return "", "", fmt.Errorf("want LOWER[:LOWER...] [UPPER WORK] MERGED, got %d arguments", len(pos))
	}
	if opts.Lowers, opts.DataLowers, err = mountopts.SplitLowerdir(pos[0]); err != nil {
		return "", "", fmt.Errorf("lower layers %q: %w", pos[0], err)
	}
	if len(pos) == 4 {
		opts.Upper, opts.Work = pos[1], pos[2]
	}
	return pos[len(pos)-1], "", nil
}
