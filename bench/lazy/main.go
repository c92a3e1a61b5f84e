// Command uflazybench measures lazy pulls (issue 19): how soon a
// container of an eStargz image gives its first output when its layers
// are pulled lazily, against a full pull and against podman, and what
// reading the whole image through a lazy union costs against pulling it
// first.
//
// The image (image.go) has busybox and a small file in its first layer
// and many files, small text and large random ones, in the others. It is
// pushed in eStargz by unionfuse (push --compression estargz) to a local
// docker-registry, reached through a proxy that counts the bytes and
// holds downloads to -rate MB/s, as a registry across a network would.
// Per repetition, each path starts from an empty store, interleaved:
//
//	first output   pull, then run --rm IMG cat /small: lazily, with
//	               --lazy=false, and podman pull + podman run
//	whole image    pull, then run --rm IMG reading every file: lazily,
//	               with --lazy=false, and podman
//
// Containers run with --network none on both sides. Results go to the
// terminal and to bench/results/lazy.md and lazy.json.
//
//	go run ./bench/lazy [-quick] [-reps N] [-rate MB/s]   # as root, from the repository
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/unionfuse/unionfuse/bench/internal/regserver"
	"github.com/unionfuse/unionfuse/bench/internal/tool"
)

// config holds the flags of one run.
type config struct {
	Dir, Out  string
	Reps      int
	Layers    int
	Size      int64 // bytes of file data in all
	Files     int
	Rate      int64 // bytes per second through the proxy
	Unionfuse string
	Podman    bool
	Keep      bool
}

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fset := flag.NewFlagSet("uflazybench", flag.ContinueOnError)
	fset.StringVar(&c.Dir, "dir", os.TempDir(), "make the workspace under `DIR`")
	fset.StringVar(&c.Out, "out", filepath.Join("bench", "results"), "write results to `DIR`")
	fset.IntVar(&c.Reps, "reps", 3, "repetitions of every measurement")
	quick := fset.Bool("quick", false, "a 100 MB image of 2,000 files, one repetition")
	fset.IntVar(&c.Layers, "layers", 5, "layers of the image")
	size := fset.Int("size-mb", 1000, "`MB` of file data in the image")
	fset.IntVar(&c.Files, "files", 20000, "files in the image")
	rate := fset.Int("rate", 100, "download rate through the proxy, `MB/s` (0: no limit)")
	fset.StringVar(&c.Unionfuse, "unionfuse", "", "measure this unionfuse `binary` instead of building ./cmd/unionfuse")
	fset.BoolVar(&c.Podman, "podman", true, "also measure podman pull + podman run")
	fset.BoolVar(&c.Keep, "keep", false, "keep the workspace")
	if err := fset.Parse(args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		if !set["reps"] {
			c.Reps = 1
		}
		if !set["size-mb"] {
			*size = 100
		}
		if !set["files"] {
			c.Files = 2000
		}
	}
	c.Size, c.Rate = int64(*size)*1e6, int64(*rate)*1e6
	if c.Reps < 1 || c.Layers < 2 || c.Size <= 0 || c.Files < c.Layers {
		return nil, fmt.Errorf("-reps must be positive, -layers at least 2, -size-mb positive, -files at least -layers")
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "uflazybench: %v\n", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "uflazybench: %v\n", err)
		os.Exit(1)
	}
}

// bench is one run: its workspace, registry and tools.
type bench struct {
	cfg   *config
	ws    string
	reg   *regserver.Registry
	uf    string // the unionfuse binary
	pm    podman
	image string // the eStargz image, through the proxy
	res   *results
}

func run(cfg *config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: containers run on both sides")
	}
	tools := []string{"docker-registry", "busybox"}
	if cfg.Podman {
		tools = append(tools, "podman", "runc")
	}
	ws, closeLog, err := tool.Workspace(cfg.Dir, "uflazybench", tools)
	if err != nil {
		return err
	}
	defer closeLog()
	b := &bench{cfg: cfg, ws: ws}
	defer b.close()
	tool.OnInterrupt("uflazybench", "stopping the registry", b.close)
	if err := b.prepare(); err != nil {
		return err
	}
	start := time.Now()
	b.reg.Proxy.SetRate(cfg.Rate)
	for rep := 0; rep < cfg.Reps; rep++ {
		paths := b.paths()
		for i := range paths {
			// Each repetition starts with another path.
			p := paths[(i+rep)%len(paths)]
			if err := b.measure(p, rep); err != nil {
				return fmt.Errorf("%s, %s: %w", p.op, p.tool, err)
			}
		}
	}
	b.res.Duration = time.Since(start).Round(time.Second).String()
	return b.res.write(cfg.Out, os.Stdout)
}

// prepare builds unionfuse, starts the registry, and pushes the image to
// it in eStargz.
func (b *bench) prepare() error {
	b.uf = b.cfg.Unionfuse
	version := "unionfuse " + b.uf
	if b.uf == "" {
		b.uf = filepath.Join(b.ws, "bin", "unionfuse")
		// The CLI starts its small siblings (the union's daemon, a
		// container's init) from its own directory.
		for _, c := range []string{"unionfuse", "unionfuse-fuse", "unionfuse-init"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(b.ws, "bin", c), "./cmd/"+c)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("go build ./cmd/%s (run from the repository): %v\n%s", c, err, out)
			}
		}
		version = "unionfuse at " + tool.Output("git", "describe", "--tags", "--always", "--dirty")
	}
	var err error
	if b.pm, err = newPodman(b.ws); err != nil {
		return err
	}
	if b.reg, err = regserver.Start(filepath.Join(b.ws, "registry")); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "uflazybench: writing a %d-layer image of %d MB in %d files\n", b.cfg.Layers, b.cfg.Size/1e6, b.cfg.Files)
	gz := b.reg.Host() + "/bench:gzip"
	if err := writeImage(filepath.Join(b.ws, "layers"), gz, b.cfg); err != nil {
		return err
	}
	// unionfuse converts it: the eStargz image other clients read too.
	b.image = b.reg.Host() + "/bench:estargz"
	store := filepath.Join(b.ws, "stores", "prepare")
	defer os.RemoveAll(store)
	for _, args := range [][]string{
		{"pull", "-q", "--lazy=false", gz},
		{"tag", gz, b.image},
		{"push", "-q", "--compression", "estargz", b.image},
	} {
		if err := b.unionfuse(store, args...); err != nil {
			return err
		}
	}
	b.res = newResults(b.cfg, version)
	return nil
}

// path is one way to a container's output: a pull and a run.
type path struct {
	op, tool string
	pull     func(store string) error
	run      func(store string) error
}

// The measurements.
const (
	opFirst = "first output"
	opWhole = "whole image"
)

// Tools, as the table names them.
const (
	toolLazy   = "unionfuse, lazy"
	toolFull   = "unionfuse, --lazy=false"
	toolPodman = "podman"
)

// storeKey names each path's stores.
var storeKey = map[string]string{toolLazy: "lazy", toolFull: "full", toolPodman: "podman"}

// smallFile is the file the first-output command reads.
const smallFile = "/small"

// readAll reads every file of the container's root file system.
const readAll = "find / -xdev -type f -exec cat {} + | wc -c"

// unionfuse runs the subcommand args[0] with the store's --root and the
// rest of args.
func (b *bench) unionfuse(store string, args ...string) error {
	return command(nil, b.uf, append([]string{args[0], "--root", store}, args[1:]...)...)
}

func (b *bench) paths() []path {
	uf := b.unionfuse
	lazyPull := func(store string) error { return uf(store, "pull", "-q", b.image) }
	fullPull := func(store string) error { return uf(store, "pull", "-q", "--lazy=false", b.image) }
	ufRun := func(argv ...string) func(string) error {
		return func(store string) error {
			return uf(store, append([]string{"run", "--rm", "--network", "none", b.image}, argv...)...)
		}
	}
	pmPull := func(store string) error { return b.pm.pull(store, b.image) }
	pmRun := func(argv ...string) func(string) error {
		return func(store string) error { return b.pm.run(store, b.image, argv...) }
	}
	ps := []path{
		{opFirst, toolLazy, lazyPull, ufRun("cat", smallFile)},
		{opFirst, toolFull, fullPull, ufRun("cat", smallFile)},
		{opWhole, toolLazy, lazyPull, ufRun("sh", "-c", readAll)},
		{opWhole, toolFull, fullPull, ufRun("sh", "-c", readAll)},
	}
	if b.cfg.Podman {
		ps = append(ps,
			path{opFirst, toolPodman, pmPull, pmRun("cat", smallFile)},
			path{opWhole, toolPodman, pmPull, pmRun("sh", "-c", readAll)})
	}
	return ps
}

// measure times p's pull and run from an empty store, after a sync, and
// records the bytes the proxy moved.
func (b *bench) measure(p path, rep int) error {
	// Short: podman refuses a runroot longer than 50 characters.
	store := filepath.Join(b.ws, "s", fmt.Sprintf("%c%s%d", p.op[0], storeKey[p.tool], rep))
	defer b.removeStore(p.tool, store)
	fmt.Fprintf(os.Stderr, "uflazybench: repetition %d, %s, %s\n", rep+1, p.op, p.tool)
	syscall.Sync()
	b.reg.Proxy.Reset()
	start := time.Now()
	if err := p.pull(store); err != nil {
		return err
	}
	pulled := time.Since(start)
	if err := p.run(store); err != nil {
		return err
	}
	total := time.Since(start)
	down, up := b.reg.Proxy.Reset()
	b.res.add(p.op, p.tool, pulled, total, down+up)
	return nil
}

func (b *bench) removeStore(tool, store string) {
	if tool == toolPodman {
		b.pm.remove(store)
		return
	}
	os.RemoveAll(store)
}

func (b *bench) close() {
	if b.reg != nil {
		b.reg.Stop()
	}
	if !b.cfg.Keep && b.ws != "" {
		os.RemoveAll(b.ws)
	}
}
