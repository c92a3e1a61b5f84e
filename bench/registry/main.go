// Command ufregbench measures unionfuse's registry client against podman
// and skopeo on this machine (issue 13): pull and push of one image of
// five layers (about 300 MB: random, incompressible files and text files
// mixed) against one local docker-registry, and a second pull of an image
// whose base layers are present, with the bytes each moved.
//
// Every tool gets a store of its own in the workspace: unionfuse's layer
// store, podman's (rootful, the kernel's overlay driver, runc, cgroupfs,
// empty configuration files), and the same podman storage for skopeo
// copy. A counting TCP proxy in front of the registry gives the bytes
// moved. Per repetition and tool, interleaved:
//
//	pull         bench:v1 into an empty store
//	push         bench:v1 from that store to an empty registry of its own
//	pull again   bench:v2 (bench:v1 plus a new layer) into the same store
//
// Figures are medians with min–max over the repetitions, and ratios to
// podman's median in the same run. Results go to the terminal and to
// bench/results/registry.md and registry.json.
//
//	go run ./bench/registry [-quick] [-reps N]   # as root, from the repository
//	make bench / make bench-quick                # with the file-system benchmark
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/unionfuse/unionfuse/bench/internal/regserver"
	"github.com/unionfuse/unionfuse/bench/internal/tool"
)

// config holds the flags of one run.
type config struct {
	Dir, Out         string
	Reps             int
	Layers           int
	LayerSize, Extra int64
	Unionfuse        string
	Baseline         string
	Clients          []string
	Keep             bool
}

var allClients = []string{"unionfuse", "podman", "skopeo"}

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fset := flag.NewFlagSet("ufregbench", flag.ContinueOnError)
	fset.StringVar(&c.Dir, "dir", os.TempDir(), "make the workspace under `DIR`")
	fset.StringVar(&c.Out, "out", filepath.Join("bench", "results"), "write results to `DIR`")
	fset.IntVar(&c.Reps, "reps", 3, "repetitions of every measurement with every tool")
	quick := fset.Bool("quick", false, "one repetition")
	fset.IntVar(&c.Layers, "layers", 5, "layers of the image")
	layer := fset.Int("layer-mb", 60, "uncompressed `MB` of each layer")
	extra := fset.Int("extra-mb", 20, "uncompressed `MB` of the layer the second image adds")
	fset.StringVar(&c.Unionfuse, "unionfuse", "", "measure this unionfuse `binary` instead of building ./cmd/unionfuse")
	fset.StringVar(&c.Baseline, "baseline", "", "also measure this unionfuse `binary`, as \"unionfuse before\" (an A/B in one run)")
	clients := fset.String("clients", strings.Join(allClients, ","), "tools to measure, comma-separated")
	fset.BoolVar(&c.Keep, "keep", false, "keep the workspace")
	if err := fset.Parse(args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick && !set["reps"] {
		c.Reps = 1
	}
	c.LayerSize, c.Extra = int64(*layer)<<20, int64(*extra)<<20
	for _, n := range strings.Split(*clients, ",") {
		if !slices.Contains(allClients, n) {
			return nil, fmt.Errorf("-clients: unknown tool %q (known: %s)", n, strings.Join(allClients, ","))
		}
		c.Clients = append(c.Clients, n)
	}
	if c.Reps < 1 || c.Layers < 1 || *layer < 1 || *extra < 1 {
		return nil, fmt.Errorf("-reps, -layers, -layer-mb and -extra-mb must be positive")
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "ufregbench: %v\n", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "ufregbench: %v\n", err)
		os.Exit(1)
	}
}

// bench is one run: its workspace, registry and tools.
type bench struct {
	cfg     *config
	ws      string
	mu      sync.Mutex
	running []*regserver.Registry // stopped by close
	src     *regserver.Registry
	clients []client
	res     *results
	archive string // bench:v1 as a docker-archive
}

func run(cfg *config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: podman's store uses the kernel's overlay driver")
	}
	ws, closeLog, err := tool.Workspace(cfg.Dir, "ufregbench", []string{"docker-registry", "podman", "skopeo", "runc"})
	if err != nil {
		return err
	}
	defer closeLog()
	b := &bench{cfg: cfg, ws: ws}
	defer b.close()
	tool.OnInterrupt("ufregbench", "stopping the registries", b.close)
	if err := b.prepare(); err != nil {
		return err
	}
	start := time.Now()
	for rep := 0; rep < cfg.Reps; rep++ {
		for i := range b.clients {
			// Each repetition starts with another tool.
			c := b.clients[(i+rep)%len(b.clients)]
			if err := b.measure(c, rep); err != nil {
				return fmt.Errorf("%s: %w", c.Name(), err)
			}
		}
	}
	b.res.Duration = time.Since(start).Round(time.Second).String()
	b.res.Machine["load at end"] = loadAverage()
	return b.res.write(cfg.Out, os.Stdout)
}

// prepare builds unionfuse, starts the source registry and pushes the
// images to it.
func (b *bench) prepare() error {
	bin := b.cfg.Unionfuse
	version := "unionfuse " + bin
	if bin == "" {
		bin = filepath.Join(b.ws, "unionfuse")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/unionfuse")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/unionfuse (run from the repository): %v\n%s", err, out)
		}
		version = "unionfuse at " + tool.Output("git", "describe", "--tags", "--always", "--dirty")
	}
	conf := filepath.Join(b.ws, "empty.conf")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		return err
	}
	storageConf := filepath.Join(b.ws, "storage.conf")
	// The roots are given on every command line; these are the defaults
	// podman insists on having.
	sc := fmt.Sprintf("[storage]\ndriver = \"overlay\"\nrunroot = %q\ngraphroot = %q\n", filepath.Join(b.ws, "podman-run"), filepath.Join(b.ws, "podman-root"))
	if err := os.WriteFile(storageConf, []byte(sc), 0o644); err != nil {
		return err
	}
	pm := podman{conf: conf, storageConf: storageConf}
	for _, n := range b.cfg.Clients {
		switch n {
		case "unionfuse":
			b.clients = append(b.clients, unionfuse{bin, "unionfuse"})
			if b.cfg.Baseline != "" {
				b.clients = append(b.clients, unionfuse{b.cfg.Baseline, "unionfuse before"})
			}
		case "podman":
			b.clients = append(b.clients, pm)
		case "skopeo":
			b.clients = append(b.clients, skopeo{pm})
		}
	}
	var err error
	if b.src, err = b.startRegistry(filepath.Join(b.ws, "registry")); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "ufregbench: writing a %d-layer image of %d MB (and one more layer of %d MB) to the registry at %s\n",
		b.cfg.Layers, b.cfg.Layers*int(b.cfg.LayerSize>>20), b.cfg.Extra>>20, b.src.Host())
	compressed, extra, err := testImages(filepath.Join(b.ws, "layers"), b.src.Host(), b.cfg.Layers, b.cfg.LayerSize, b.cfg.Extra)
	if err != nil {
		return err
	}
	b.res = newResults(b.cfg, compressed, extra, version)
	// The same image as a docker-archive: plain layer tarballs.
	b.archive = filepath.Join(b.ws, "bench-v1.tar")
	return command(pm.env(), "skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false",
		"docker://"+b.src.Host()+"/bench:v1", "docker-archive:"+b.archive+":bench:v1")
}

// measure runs the measurements of one repetition with c.
func (b *bench) measure(c client, rep int) error {
	slug := fmt.Sprintf("%s-%d", strings.ReplaceAll(c.Name(), " ", "-"), rep)
	store := filepath.Join(b.ws, "stores", slug)
	defer c.Remove(store)
	v1, v2 := b.src.Host()+"/bench:v1", b.src.Host()+"/bench:v2"
	fmt.Fprintf(os.Stderr, "ufregbench: repetition %d, %s\n", rep+1, c.Name())

	if err := b.timed(c, opPull, b.src, func() error { return c.Pull(store, v1) }); err != nil {
		return err
	}
	if err := b.pushFresh(c, opPush, store, v1, slug); err != nil {
		return err
	}
	if err := b.timed(c, opPullAgain, b.src, func() error { return c.Pull(store, v2) }); err != nil {
		return err
	}
	u, ok := c.(unionfuse)
	if !ok {
		return nil
	}
	// bench:v1 loaded from the docker-archive: plain layer tarballs.
	local := filepath.Join(b.ws, "stores", slug+"-local")
	defer u.Remove(local)
	if err := u.Load(local, b.archive); err != nil {
		return err
	}
	return b.pushFresh(u, opPushLocal, local, "bench:v1", slug+"-local")
}

// pushFresh times the push of the image src of c's store to an empty
// registry of its own, as op.
func (b *bench) pushFresh(c client, op, store, src, slug string) error {
	dst, err := b.startRegistry(filepath.Join(b.ws, "push", slug))
	if err != nil {
		return err
	}
	defer func() { dst.Stop(); os.RemoveAll(dst.Dir) }()
	pushed := dst.Host() + "/bench:v1"
	if err := c.PreparePush(store, src, pushed); err != nil {
		return err
	}
	return b.timed(c, op, dst, func() error { return c.Push(store, src, pushed) })
}

// timed syncs, runs fn, and records its time, the time until a sync after
// it returns, and the bytes that went through reg's proxy.
func (b *bench) timed(c client, op string, reg *regserver.Registry, fn func() error) error {
	syscall.Sync()
	reg.Proxy.Reset()
	cpu := cpuUsed
	start := time.Now()
	if err := fn(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	d := time.Since(start)
	cpu = cpuUsed - cpu
	syscall.Sync()
	synced := time.Since(start)
	down, up := reg.Proxy.Reset()
	b.res.add(op, c.Name(), d, synced, cpu, down+up)
	return nil
}

// startRegistry starts a registry that close stops if it still runs.
func (b *bench) startRegistry(dir string) (*regserver.Registry, error) {
	r, err := regserver.Start(dir)
	if err == nil {
		b.mu.Lock()
		b.running = append(b.running, r)
		b.mu.Unlock()
	}
	return r, err
}

func (b *bench) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.running {
		r.Stop()
	}
	b.running = nil
	if !b.cfg.Keep && b.ws != "" {
		os.RemoveAll(b.ws)
	}
}
