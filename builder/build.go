package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/runner"
)

// Options are what `unionfuse build` is asked.
type Options struct {
	Context    string            // the build context directory
	Dockerfile string            // "" for Context/Dockerfile
	Tags       []string          // names for the result (REPOSITORY[:TAG])
	BuildArgs  map[string]string // --build-arg K=V
	Target     string            // the stage to build ("" for the last)
	NoCache    bool              // build every step again
	// Pull says when FROM and COPY --from images are fetched from their
	// registries (the builder's Puller): by default only when the store
	// lacks them; PullAlways checks the registry for newer ones.
	Pull runner.PullPolicy
	// Out receives the steps, their output and the result, as Docker's
	// classic builder prints them; nil discards them (quiet).
	Out io.Writer
}

// Builder builds images from Dockerfiles into a store.
type Builder struct {
	store  *cowcache.Store
	exec   Executor
	puller runner.Puller
}

// New returns a builder that keeps images in s and runs RUN, COPY, ADD
// and WORKDIR steps in containers from e.
func New(s *cowcache.Store, e Executor) *Builder { return &Builder{store: s, exec: e} }

// WithPuller makes FROM and COPY --from fetch the images the store lacks
// through p (see Options.Pull) and returns b. Without a Puller nothing is
// pulled.
func (b *Builder) WithPuller(p runner.Puller) *Builder {
	b.puller = p
	return b
}

// stageResult is a built stage, for FROM and COPY --from.
type stageResult struct {
	name string
	img  *cowcache.Image // nil for a stage that stayed empty (FROM scratch)
}

// build is one run of Build.
type build struct {
	*Builder
	ctx    context.Context
	o      Options
	out    io.Writer
	df     *dockerfile
	path   string   // of the Dockerfile, for errors
	src    *srcRoot // the build context's files
	lease  *cowcache.Lease
	args   *args
	done   []stageResult
	step   int
	nsteps int
}

// errInterrupted ends a build whose context was cancelled.
var errInterrupted = errors.New("interrupted")

// check returns errInterrupted once the build's context is cancelled.
func (bd *build) check() error {
	if bd.ctx.Err() != nil {
		return errInterrupted
	}
	return nil
}

// Build builds the Dockerfile and returns the image of its target stage
// (the last stage by default), named with o.Tags. Each step's image is
// kept and cached, so that a failed build resumes from the last step that
// succeeded; a failed step leaves no image, container or mount behind.
// Cancelling ctx (the command layer does on SIGINT and SIGTERM) stops the
// build: the step going on ends with an error, a RUN step once its
// command has ended.
func (b *Builder) Build(ctx context.Context, o Options) (cowcache.Image, error) {
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	dfPath := o.Dockerfile
	if dfPath == "" {
		dfPath = filepath.Join(o.Context, "Dockerfile")
	}
	var names []string
	for _, t := range o.Tags {
		n, err := cowcache.NormalizeName(t)
		if err != nil {
			return cowcache.Image{}, err
		}
		names = append(names, n)
	}
	df, err := parseDockerfile(dfPath)
	if err != nil {
		return cowcache.Image{}, err
	}
	src, err := openContext(o.Context)
	if err != nil {
		return cowcache.Image{}, err
	}
	defer src.Close()
	// The images the build steps onto stay until it ends, whatever a
	// prune or rmi in another process does meanwhile.
	lease, err := b.store.Lease()
	if err != nil {
		return cowcache.Image{}, err
	}
	defer lease.Release()
	bd := &build{Builder: b, ctx: ctx, o: o, out: out, df: df, src: src, lease: lease, args: newArgs(o.BuildArgs), path: dfPath}
	last := len(df.stages) - 1
	if o.Target != "" {
		i, ok := instructions.HasStage(df.stages, o.Target)
		if !ok {
			return cowcache.Image{}, fmt.Errorf("%s: --target %s: no such stage", dfPath, o.Target)
		}
		last = i
	}
	for _, a := range df.metaArgs {
		if err := bd.args.declareMeta(df.lex, &a); err != nil {
			return cowcache.Image{}, fmt.Errorf("%s:%d: ARG: %w", dfPath, lineOf(a.Location()), err)
		}
	}
	for _, st := range df.stages[:last+1] {
		bd.nsteps += 1 + len(st.Commands)
	}
	for i := range df.stages[:last+1] {
		if err := bd.stage(&df.stages[i]); err != nil {
			return cowcache.Image{}, err
		}
	}
	final := bd.done[last].img
	if final == nil {
		return cowcache.Image{}, errors.New("the build produced no image (an empty FROM scratch stage)")
	}
	if unused := bd.args.unused(); len(unused) > 0 {
		fmt.Fprintf(out, "[Warning] One or more build-args %v were not consumed\n", unused)
	}
	fmt.Fprintf(out, "Successfully built %s\n", final.ID.Short())
	for _, n := range names {
		if err := b.store.Tag(final.ID.String(), n); err != nil {
			return cowcache.Image{}, err
		}
		fmt.Fprintf(out, "Successfully tagged %s\n", n)
	}
	img, err := b.store.Image(final.ID.String())
	if err != nil {
		return cowcache.Image{}, err
	}
	return img, nil
}

// stage builds one stage.
func (bd *build) stage(st *instructions.Stage) error {
	bd.args.startStage()
	bd.step++
	fmt.Fprintf(bd.out, "Step %d/%d : %s\n", bd.step, bd.nsteps, st.SourceCode)
	base, err := bd.df.lex.ProcessWordWithMatches(st.BaseName, shell.EnvsFromSlice(bd.args.metaEnv()))
	if err != nil {
		return fmt.Errorf("%s:%d: FROM %s: %w", bd.path, lineOf(st.Location), st.BaseName, err)
	}
	if st.Platform != "" {
		fmt.Fprintf(bd.out, " ---> note: --platform=%s ignored: images are run as they are\n", st.Platform)
	}
	img, err := bd.from(base.Result)
	if err == nil {
		err = bd.hold(img)
	}
	if err != nil {
		return fmt.Errorf("%s:%d: FROM %s: %w", bd.path, lineOf(st.Location), base.Result, err)
	}
	if img != nil {
		fmt.Fprintf(bd.out, " ---> %s\n", img.ID.Short())
	}
	for _, cmd := range st.Commands {
		if err := bd.check(); err != nil {
			return err
		}
		bd.step++
		fmt.Fprintf(bd.out, "Step %d/%d : %s\n", bd.step, bd.nsteps, sourceOf(cmd))
		next, err := bd.dispatch(img, cmd)
		if err == nil {
			err = bd.hold(next)
		}
		if err != nil {
			return fmt.Errorf("%s:%d: %w", bd.path, lineOf(cmd.Location()), err)
		}
		img = next
	}
	bd.done = append(bd.done, stageResult{name: st.Name, img: img})
	return nil
}

// hold adds img (nil: none) to the build's lease.
func (bd *build) hold(img *cowcache.Image) error {
	if img == nil {
		return nil
	}
	return bd.lease.Add(img.ID)
}

// sourceOf is the instruction as written, on one line.
func sourceOf(cmd instructions.Command) string {
	if s, ok := cmd.(fmt.Stringer); ok {
		return strings.Join(strings.Fields(s.String()), " ")
	}
	return cmd.Name()
}

// from resolves a FROM: scratch, an earlier stage or an image of the store.
func (bd *build) from(name string) (*cowcache.Image, error) {
	if name == "scratch" {
		return nil, nil
	}
	for i := len(bd.done) - 1; i >= 0; i-- {
		if bd.done[i].name != "" && strings.EqualFold(bd.done[i].name, name) {
			return bd.done[i].img, nil
		}
	}
	img, err := runner.FindImage(bd.store, name, bd.o.Pull, bd.puller)
	if err != nil {
		return nil, err
	}
	return &img, nil
}

// configOf returns a copy of an image's runtime config.
func configOf(img *cowcache.Image) v1.Config {
	if img == nil || img.Config == nil {
		return v1.Config{}
	}
	c := img.Config.Config
	c.Env = append([]string(nil), c.Env...)
	if c.Labels != nil {
		labels := make(map[string]string, len(c.Labels))
		for k, v := range c.Labels {
			labels[k] = v
		}
		c.Labels = labels
	}
	return c
}

// expander returns the word expander of a step: the image's ENV over the
// stage's ARGs.
func (bd *build) expander(cfg *v1.Config) instructions.SingleWordExpander {
	env := append(bd.args.env(cfg.Env), cfg.Env...)
	return func(word string) (string, error) {
		out, _, err := bd.df.lex.ProcessWord(word, shell.EnvsFromSlice(env))
		return out, err
	}
}

// dispatch runs one instruction on img and returns the image after it.
func (bd *build) dispatch(img *cowcache.Image, cmd instructions.Command) (*cowcache.Image, error) {
	cfg := configOf(img)
	if e, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
		if err := e.Expand(bd.expander(&cfg)); err != nil {
			return nil, fmt.Errorf("%s: %w", cmd.Name(), err)
		}
	}
	if a, ok := cmd.(*instructions.ArgCommand); ok {
		for _, kv := range a.Args {
			if err := bd.args.declare(kv, bd.expander(&cfg)); err != nil {
				return nil, fmt.Errorf("ARG: %w", err)
			}
		}
		// ARG changes no config: Docker records no step for it either,
		// but the image goes on unchanged.
		fmt.Fprintf(bd.out, " ---> %s\n", shortOrScratch(img))
		return img, nil
	}
	if createdBy, ok, err := applyMeta(&cfg, cmd); ok {
		if err != nil {
			return nil, err
		}
		return bd.commitStep(img, stepSpec{key: createdBy, createdBy: createdBy, config: &cfg})
	}
	switch c := cmd.(type) {
	case *instructions.WorkdirCommand:
		cfg.WorkingDir = workdir(&cfg, c.Path)
		return bd.workdir(img, &cfg)
	case *instructions.RunCommand:
		return bd.run(img, &cfg, c)
	case *instructions.CopyCommand:
		return bd.copy(img, &cfg, copyStep{name: "COPY", from: c.From, chown: c.Chown, chmod: c.Chmod,
			sd: c.SourcesAndDest, link: c.Link, parents: c.Parents, excludes: c.ExcludePatterns})
	case *instructions.AddCommand:
		return bd.copy(img, &cfg, copyStep{name: "ADD", chown: c.Chown, chmod: c.Chmod, sd: c.SourcesAndDest,
			link: c.Link, excludes: c.ExcludePatterns, add: true, checksum: c.Checksum})
	}
	return nil, fmt.Errorf("%s is not supported by unionfuse build", strings.ToUpper(cmd.Name()))
}

func shortOrScratch(img *cowcache.Image) string {
	if img == nil {
		return "scratch"
	}
	return img.ID.Short()
}

// stepSpec is a step to look up in the cache or commit.
type stepSpec struct {
	key       string // the expanded instruction, for the cache
	sources   string // digest of COPY/ADD sources
	createdBy string
	config    *v1.Config
	upper     string // the container's layer; "" for a config-only step
	// move: the store may move upper into the new layer (see takeLayer).
	move bool
}

// takeLayer gives the step s the layer of its container c, which is
// unmounted: the store may move it rather than copy it when nothing
// serves it any more (the container is removed after the commit).
func takeLayer(s *stepSpec, c Container) {
	s.upper = c.UpperDir()
	idle, ok := c.(IdleLayer)
	s.move = ok && idle.LayerIdle() == nil
}

// cached returns the image the cache has for a step, unless --no-cache.
func (bd *build) cached(img *cowcache.Image, key, sources string) (*cowcache.Image, error) {
	if bd.o.NoCache {
		return nil, nil
	}
	hit, ok, err := bd.store.CachedImage(cacheKey(img, key, sources))
	if err != nil || !ok {
		return nil, err
	}
	fmt.Fprintf(bd.out, " ---> Using cache\n ---> %s\n", hit.ID.Short())
	return &hit, nil
}

func cacheKey(img *cowcache.Image, key, sources string) cowcache.CacheKey {
	k := cowcache.CacheKey{Step: key}
	if img != nil {
		k.Parent = img.ID
	}
	if sources != "" {
		k.Sources = cowcache.Digest("sha256:" + sources)
	}
	return k
}

// commitStep returns the cached image of a config-only step, or commits it.
func (bd *build) commitStep(img *cowcache.Image, s stepSpec) (*cowcache.Image, error) {
	if hit, err := bd.cached(img, s.key, s.sources); hit != nil || err != nil {
		return hit, err
	}
	return bd.commit(img, s)
}

// commit makes the step's image and records it in the cache.
func (bd *build) commit(img *cowcache.Image, s stepSpec) (*cowcache.Image, error) {
	if err := bd.check(); err != nil {
		return nil, err
	}
	next, err := bd.store.CommitUpper(img, cowcache.UpperCommit{UpperDir: s.upper, Move: s.move, Config: s.config,
		History: v1.History{CreatedBy: s.createdBy}})
	if err != nil {
		return nil, err
	}
	if err := bd.store.PutCache(cacheKey(img, s.key, s.sources), next.ID); err != nil {
		return nil, err
	}
	fmt.Fprintf(bd.out, " ---> %s\n", next.ID.Short())
	return &next, nil
}

// refOf is the executor's name for an image ("" for scratch).
func refOf(img *cowcache.Image) string {
	if img == nil {
		return ""
	}
	return img.ID.String()
}

// workdir makes WORKDIR's directory when the image lacks it; the step
// has a layer only when it made one.
func (bd *build) workdir(img *cowcache.Image, cfg *v1.Config) (*cowcache.Image, error) {
	s := stepSpec{key: nop(cfg, "WORKDIR "+cfg.WorkingDir), config: cfg}
	s.createdBy = s.key
	if hit, err := bd.cached(img, s.key, ""); hit != nil || err != nil {
		return hit, err
	}
	var next *cowcache.Image
	err := bd.inContainer(img, nil, func(c Container, rootfs string, unmount func() error) error {
		if err := mkdirIn(rootfs, cfg.WorkingDir); err != nil {
			return err
		}
		if err := unmount(); err != nil {
			return err
		}
		if ents, _ := os.ReadDir(c.UpperDir()); len(ents) > 0 {
			takeLayer(&s, c)
		}
		var err error
		next, err = bd.commit(img, s)
		return err
	})
	return next, err
}

// inContainer creates a container on img, mounts it when p is nil, and
// calls fn with the container, its root and the unmount (which fn calls
// before committing the container's layer). The container is unmounted
// and removed whatever happens.
func (bd *build) inContainer(img *cowcache.Image, p *Process, fn func(c Container, rootfs string, unmount func() error) error) error {
	c, err := bd.exec.Create(refOf(img), p)
	if err != nil {
		return err
	}
	mounted := false
	unmount := func() error {
		if !mounted {
			return nil
		}
		mounted = false
		return c.Unmount()
	}
	defer func() {
		unmount()
		c.Remove()
	}()
	rootfs := ""
	if p == nil {
		if rootfs, err = c.Mount(); err != nil {
			return err
		}
		mounted = true
	}
	return fn(c, rootfs, unmount)
}
