// Command ufbench is the benchmark harness of unionfuse: it prepares the
// same layers on the same ext4 disk and runs the same workloads on four
// systems, interleaved (native, kernel, fuse-overlayfs, unionfuse, native,
// kernel, ...), several repetitions each:
//
//	native          a plain directory holding the union's tree: the ceiling
//	kernel          the kernel's overlayfs (mount -t overlay)
//	fuse-overlayfs  Debian's fuse-overlayfs, in the foreground as a child
//	unionfuse       the unionfuse CLI (unionfuse -f -o ...), as a child
//
// Every figure is reported as its median and min–max over the repetitions
// and as a ratio to kernel overlayfs measured in the same run. Results go to
// the terminal (a table), and to bench/results/ as JSON, TSV, Markdown,
// and a plot (SVG and PNG).
//
// Run it as root from the repository root (it mounts and drops caches):
//
//	go run ./bench                  # the full run, under 10 minutes
//	go run ./bench -quick           # about a minute, smaller sizes
//	make bench / make bench-quick   # the same, after installing fio and
//	                                # fuse-overlayfs when missing
//
// The file layout: main.go (flags), systems.go (the four systems) and
// shellmount.go (mounting as from a shell), layers.go (the data),
// workloads.go, fio.go and session.go (what is timed), runner.go (the
// interleaving, caches and checks), stats.go, report.go and plot.go.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config holds the flags of one run.
type Config struct {
	// Dir is where the workspace (a temporary directory) is made; it must
	// be on ext4.
	Dir string
	// Out is the directory results are written to.
	Out string
	// Reps is the number of repetitions of every workload on every system.
	Reps int
	// Quick selects the small sizes of a one-minute run.
	Quick bool
	// Systems and Workloads select what runs, by name.
	Systems, Workloads []string

	// WalkFiles and WalkDirs size the metadata-walk tree.
	WalkFiles, WalkDirs int
	// ReaddirEntries is the size of the large directory.
	ReaddirEntries int
	// CreateFiles is the number of small files in the tarball.
	CreateFiles int
	// DeleteFiles is the number of files in the deleted lower subtree.
	DeleteFiles int
	// SessionFiles is the number of files the session workload extracts,
	// and of those in the lower subtree it deletes (session.go).
	SessionFiles int
	// SeqSize is the size of the sequentially read, written and copied-up
	// files; RandSize that of the files fio reads and writes at random.
	SeqSize, RandSize int64
	// FioRuntime is how long each fio job runs.
	FioRuntime time.Duration
	// ChownFiles and ChownSize are the files of the chown tree and their
	// total size (metacopy.go).
	ChownFiles int
	ChownSize  int64
	// MountLayers is the number of lower layers of the large mount.
	MountLayers int
	// HugeFiles is the number of files of the huge walk (memory.go);
	// Mounts the number of unions mounted at once.
	HugeFiles, Mounts int
	// Rootless runs the workloads and the FUSE daemons as an unprivileged
	// user (rootless.go).
	Rootless bool `json:"rootless,omitempty"`

	// UnionfuseBin, when set, is a prebuilt unionfuse CLI to run.
	UnionfuseBin string
	// Rev, when set, is the commit unionfuse is built from (through git
	// archive); by default it is built from the working tree.
	Rev string
	// Profile, when set, is a directory for CPU profiles of the unionfuse
	// daemon, one per mount (unionfuse --cpuprofile).
	Profile string
	// MemProfile, when set, is a directory for heap profiles of the
	// unionfuse daemon, one per mount, written when the mount goes away
	// (unionfuse --memprofile).
	MemProfile string
	// Keep leaves the workspace in place after the run.
	Keep bool
	// Report, when set, names a results JSON of an earlier run whose
	// table, TSV and plot are written again; nothing is measured.
	Report string `json:"-"`
	// Combine, when set, names the results JSON of a run as root and of
	// one without root (comma-separated): their tables and plots are
	// written together as all.* (make bench-all); nothing is measured.
	Combine string `json:"-"`
}

// allSystems and allWorkloads are the defaults of -systems and -workloads.
var (
	allSystems = []string{sysNative, sysKernel, sysFuseOv, sysUnion}
	// knownSystems adds those only run when asked for.
	knownSystems = append(append([]string{}, allSystems...), sysUnionNoPT, sysKernelMC, sysUnionMC, sysUnionServer)
	allWorkloads = []string{"walk", "readdir", "seqread", "randread", "mount", "create", "seqwrite", "randwrite", "copyup", "chown", "delete", "session", "hugewalk", "mounts"}
)

func parseFlags(args []string) (*Config, error) {
	c := &Config{}
	fset := flag.NewFlagSet("ufbench", flag.ContinueOnError)
	fset.StringVar(&c.Dir, "dir", os.TempDir(), "make the workspace under `DIR` (must be ext4)")
	fset.StringVar(&c.Out, "out", filepath.Join("bench", "results"), "write results to `DIR`")
	fset.IntVar(&c.Reps, "reps", 3, "repetitions of every workload on every system")
	fset.BoolVar(&c.Quick, "quick", false, "small sizes and 2 repetitions: about a minute")
	systems := fset.String("systems", strings.Join(allSystems, ","), "systems to run, comma-separated")
	workloads := fset.String("workloads", strings.Join(allWorkloads, ","), "workloads to run, comma-separated")
	fset.IntVar(&c.WalkFiles, "walk-files", 60000, "files in the metadata-walk tree")
	fset.IntVar(&c.WalkDirs, "walk-dirs", 3000, "directories in the metadata-walk tree")
	fset.IntVar(&c.ReaddirEntries, "readdir-entries", 20000, "entries in the large directory")
	fset.IntVar(&c.CreateFiles, "create-files", 20000, "small files in the extracted tarball")
	fset.IntVar(&c.DeleteFiles, "delete-files", 10000, "files in the deleted lower subtree")
	fset.IntVar(&c.SessionFiles, "session-files", 7500, "files the session workload extracts, and deletes from a lower subtree")
	seq := fset.String("seq-size", "1G", "size of the sequential and copy-up files")
	rnd := fset.String("rand-size", "512M", "size of the files fio reads and writes at random")
	fset.DurationVar(&c.FioRuntime, "fio-runtime", 5*time.Second, "run time of each fio job (3 repetitions × 5 s = 15 s per system and job)")
	fset.IntVar(&c.ChownFiles, "chown-files", 2000, "files in the tree of chown -R")
	chownSize := fset.String("chown-size", "1G", "total size of the files of the chown tree")
	fset.IntVar(&c.MountLayers, "mount-layers", 100, "lower layers of the large mount")
	fset.IntVar(&c.HugeFiles, "huge-files", 1000000, "files of the huge walk (memory.go)")
	fset.IntVar(&c.Mounts, "mounts", 100, "unions mounted at once by the mounts workload")
	fset.StringVar(&c.Rev, "rev", "", "build unionfuse from this git `revision` instead of the working tree")
	fset.StringVar(&c.UnionfuseBin, "unionfuse", "", "run this prebuilt unionfuse `binary` instead of building ./cmd/unionfuse")
	fset.StringVar(&c.Profile, "profile", "", "write CPU profiles of the unionfuse daemon to `DIR`, one per mount")
	fset.StringVar(&c.MemProfile, "memprofile", "", "write heap profiles of the unionfuse daemon to `DIR`, one per mount, taken at its unmount")
	fset.BoolVar(&c.Keep, "keep", false, "keep the workspace after the run")
	fset.BoolVar(&c.Rootless, "rootless", false, "run the workloads and the FUSE daemons as the unprivileged user nobody (no passthrough, fusermount3)")
	fset.StringVar(&c.Report, "report", "", "measure nothing: rewrite the table and plots of the results `JSON` of an earlier run")
	fset.StringVar(&c.Combine, "combine", "", "measure nothing: write the tables and plots of `ROOT.json,ROOTLESS.json` (two earlier runs) together as all.*")
	if err := fset.Parse(args); err != nil {
		return nil, err
	}
	if fset.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fset.Arg(0))
	}
	set := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.Quick {
		quick := map[string]func(){
			"reps":            func() { c.Reps = 2 },
			"walk-files":      func() { c.WalkFiles = 6000 },
			"walk-dirs":       func() { c.WalkDirs = 300 },
			"readdir-entries": func() { c.ReaddirEntries = 5000 },
			"create-files":    func() { c.CreateFiles = 2000 },
			"delete-files":    func() { c.DeleteFiles = 1000 },
			"session-files":   func() { c.SessionFiles = 750 },
			"seq-size":        func() { *seq = "256M" },
			"rand-size":       func() { *rnd = "64M" },
			"fio-runtime":     func() { c.FioRuntime = time.Second },
			"mount-layers":    func() {},
			"huge-files":      func() { c.HugeFiles = 100000 },
			"mounts":          func() { c.Mounts = 20 },
			"chown-size":      func() { *chownSize = "64M" },
			"chown-files":     func() {},
		}
		for name, apply := range quick {
			if !set[name] {
				apply()
			}
		}
	}
	var err error
	if c.SeqSize, err = parseSize(*seq); err != nil {
		return nil, fmt.Errorf("-seq-size: %w", err)
	}
	if c.RandSize, err = parseSize(*rnd); err != nil {
		return nil, fmt.Errorf("-rand-size: %w", err)
	}
	if c.ChownSize, err = parseSize(*chownSize); err != nil {
		return nil, fmt.Errorf("-chown-size: %w", err)
	}
	if c.ChownFiles < 1 {
		return nil, fmt.Errorf("-chown-files must be positive")
	}
	if c.Systems, err = pickNames(*systems, knownSystems); err != nil {
		return nil, fmt.Errorf("-systems: %w", err)
	}
	if c.Workloads, err = pickNames(*workloads, allWorkloads); err != nil {
		return nil, fmt.Errorf("-workloads: %w", err)
	}
	if c.Rootless && slices.Contains(c.Workloads, "chown") {
		// chown -R to another owner needs CAP_CHOWN, which the
		// unprivileged user does not have on any of the systems.
		if flagSet(fset, "workloads") {
			return nil, fmt.Errorf("-workloads chown needs root (it gives files to another owner): leave it out with -rootless")
		}
		c.Workloads = slices.DeleteFunc(c.Workloads, func(w string) bool { return w == "chown" })
	}
	switch {
	case c.Reps < 1:
		return nil, fmt.Errorf("-reps must be at least 1")
	case c.WalkDirs < 1 || c.WalkFiles < c.WalkDirs:
		return nil, fmt.Errorf("-walk-files must be at least -walk-dirs, which must be positive")
	case c.HugeFiles < 1 || c.Mounts < 1:
		return nil, fmt.Errorf("-huge-files and -mounts must be positive")
	case c.ReaddirEntries < 1 || c.CreateFiles < 1 || c.DeleteFiles < 1 || c.SessionFiles < 1:
		return nil, fmt.Errorf("-readdir-entries, -create-files, -delete-files and -session-files must be positive")
	case c.SeqSize < 1<<20 || c.RandSize < 1<<20:
		return nil, fmt.Errorf("-seq-size and -rand-size must be at least 1M")
	case c.MountLayers < 2 || c.MountLayers > 500:
		return nil, fmt.Errorf("-mount-layers must be between 2 and 500")
	case c.Rootless && slices.Contains(c.Systems, sysUnionNoPT):
		return nil, fmt.Errorf("-rootless measures unionfuse without passthrough already: leave out %s", sysUnionNoPT)
	}
	return c, nil
}

// parseSize reads a byte count with an optional binary suffix: 512M, 1G.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch strings.ToUpper(s[len(s)-min(1, len(s)):]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q (want a number with an optional K, M or G)", s)
	}
	return n * mult, nil
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fset *flag.FlagSet, name string) bool {
	set := false
	fset.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// pickNames splits a comma-separated list and checks every name is known,
// keeping the order of known.
func pickNames(list string, known []string) ([]string, error) {
	want := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	var out []string
	for _, k := range known {
		if want[k] {
			out = append(out, k)
			delete(want, k)
		}
	}
	for n := range want {
		return nil, fmt.Errorf("unknown name %q (known: %s)", n, strings.Join(known, ","))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("nothing selected")
	}
	return out, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "ufbench: %v\n", err)
		os.Exit(2)
	}
	// Ctrl-C unmounts everything before exiting. The daemons are in their
	// own process groups, so the terminal's SIGINT does not reach them.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "\nufbench: %v: unmounting and exiting\n", s)
		unmountAll()
		restoreHost()
		if workspaceRoot != "" {
			fmt.Fprintf(os.Stderr, "ufbench: the workspace %s is left behind: remove it with rm -rf\n", workspaceRoot)
		}
		os.Exit(130)
	}()
	err = run(cfg)
	unmountAll()
	restoreHost()
	if err != nil {
		fmt.Fprintf(os.Stderr, "ufbench: %v\n", err)
		os.Exit(1)
	}
}

// run prepares the workspace, runs the workloads and writes the reports.
func run(cfg *Config) error {
	if cfg.Combine != "" {
		return writeCombined(cfg, os.Stdout)
	}
	if cfg.Report != "" {
		res, err := loadResults(cfg.Report)
		if err != nil {
			return err
		}
		return writeReports(cfg, res, os.Stdout)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the benchmark mounts overlays and drops the page cache")
	}
	if cfg.Rootless {
		workloadCred = &syscall.Credential{Uid: rootlessUID, Gid: rootlessGID}
		if err := allowUnprivilegedFuse(); err != nil {
			return err
		}
	}
	r, err := newRunner(cfg)
	if err != nil {
		return err
	}
	defer r.close()
	if err := r.prepare(); err != nil {
		return err
	}
	res, err := r.runAll()
	if err != nil {
		return err
	}
	return writeReports(cfg, res, os.Stdout)
}
