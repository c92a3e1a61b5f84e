package builder

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/runner"
)

// run runs a RUN step in a container and commits its layer.
func (bd *build) run(img *cowcache.Image, cfg *v1.Config, c *instructions.RunCommand) (*cowcache.Image, error) {
	if len(c.FlagsUsed) > 0 {
		return nil, fmt.Errorf("RUN --%s is not supported by unionfuse build", c.FlagsUsed[0])
	}
	argv := commandLine(cfg, c.ShellDependantCmdLine)
	if len(c.Files) > 0 {
		// RUN <<EOF: the here-document is the script.
		if !c.PrependShell || len(c.Files) != 1 || !strings.HasPrefix(strings.TrimSpace(strings.Join(c.CmdLine, " ")), "<<") {
			return nil, fmt.Errorf("RUN: only a single here-document as the whole command is supported")
		}
		argv = append(append([]string(nil), shellOf(cfg)...), c.Files[0].Data)
	}
	env := bd.args.env(cfg.Env)
	createdBy := strings.Join(argv, " ")
	if len(env) > 0 {
		createdBy = fmt.Sprintf("|%d %s %s", len(env), strings.Join(env, " "), createdBy)
	}
	s := stepSpec{key: createdBy, createdBy: createdBy, config: cfg}
	if hit, err := bd.cached(img, s.key, ""); hit != nil || err != nil {
		return hit, err
	}
	var next *cowcache.Image
	err := bd.inContainer(img, &Process{Args: argv, Env: env}, func(ctr Container, _ string, _ func() error) error {
		fmt.Fprintf(bd.out, " ---> Running in %s\n", shortID(ctr.ID()))
		if err := bd.check(); err != nil {
			return err
		}
		code, err := ctr.Run(bd.ctx, bd.out, bd.out)
		if err != nil {
			return fmt.Errorf("RUN %s: %w", strings.Join(argv, " "), err)
		}
		if err := bd.check(); err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("the command '%s' returned a non-zero code: %d", strings.Join(argv, " "), code)
		}
		fmt.Fprintf(bd.out, "Removing intermediate container %s\n", shortID(ctr.ID()))
		takeLayer(&s, ctr)
		next, err = bd.commit(img, s)
		return err
	})
	return next, err
}

func shortID(id string) string {
	if len(id) > cowcache.ShortIDLen {
		return id[:cowcache.ShortIDLen]
	}
	return id
}

// copyStep is a COPY or ADD.
type copyStep struct {
	name            string // COPY or ADD
	from            string // --from
	chown, chmod    string
	sd              instructions.SourcesAndDest
	link, parents   bool
	excludes        []string
	add             bool
	checksum        string
	fromDescription string
}

// copy runs a COPY or ADD: the sources are hashed for the cache, then
// copied into a mounted container whose layer becomes the step's.
func (bd *build) copy(img *cowcache.Image, cfg *v1.Config, cs copyStep) (*cowcache.Image, error) {
	switch {
	case cs.parents:
		return nil, fmt.Errorf("%s --parents is not supported by unionfuse build", cs.name)
	case len(cs.excludes) > 0:
		return nil, fmt.Errorf("%s --exclude is not supported by unionfuse build", cs.name)
	case cs.checksum != "":
		return nil, fmt.Errorf("ADD --checksum is not supported by unionfuse build (it has no network)")
	}
	for _, src := range cs.sd.SourcePaths {
		if isURL(src) {
			return nil, fmt.Errorf("%s %s: unionfuse build has no network access: download the file into the build context and COPY it", cs.name, src)
		}
	}
	dest := cs.sd.DestPath
	if !path.IsAbs(dest) {
		wd := cfg.WorkingDir
		if wd == "" {
			wd = "/"
		}
		slash := strings.HasSuffix(dest, "/") || dest == "." || dest == "./"
		dest = path.Join(wd, dest)
		if slash && !strings.HasSuffix(dest, "/") {
			dest += "/"
		}
	}
	chmod, err := parseChmod(cs.chmod)
	if err != nil {
		return nil, err
	}
	withSources := func(root *srcRoot) (*cowcache.Image, error) {
		srcs, err := root.sources(cs.sd.SourcePaths)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cs.name, err)
		}
		digest, err := digestSources(srcs)
		if err != nil {
			return nil, err
		}
		key := fmt.Sprintf("%s --from=%s --chown=%s --chmod=%s %q %s", cs.name, cs.fromDescription, cs.chown, cs.chmod, cs.sd.SourcePaths, dest)
		s := stepSpec{key: key, sources: digest, config: cfg,
			createdBy: strings.Join(shellOf(cfg), " ") + " #(nop) " + fmt.Sprintf("%s %s:%s in %s ", cs.name, kindOf(srcs), digest, dest)}
		if hit, err := bd.cached(img, s.key, s.sources); hit != nil || err != nil {
			return hit, err
		}
		var next *cowcache.Image
		err = bd.inContainer(img, nil, func(c Container, rootfs string, unmount func() error) error {
			o := copyOpts{dest: dest, chmod: chmod, unpack: cs.add && cs.from == "", check: bd.check}
			o.progress = func(files int, bytes int64) {
				fmt.Fprintf(bd.out, " ---> copying: %d files, %d bytes so far\n", files, bytes)
			}
			var err error
			if o.uid, o.gid, err = parseChown(rootfs, cs.chown); err != nil {
				return err
			}
			if err := copyInto(rootfs, srcs, o); err != nil {
				return fmt.Errorf("%s: %w", cs.name, err)
			}
			if err := unmount(); err != nil {
				return err
			}
			takeLayer(&s, c)
			next, err = bd.commit(img, s)
			return err
		})
		return next, err
	}
	if len(cs.sd.SourceContents) > 0 {
		return bd.copyHeredoc(cs, withSources)
	}
	if cs.from == "" {
		return withSources(bd.src)
	}
	from, desc, err := bd.copyFrom(cs.from)
	if err != nil {
		return nil, err
	}
	if from == nil {
		return nil, fmt.Errorf("%s --from=%s: the stage is empty (FROM scratch)", cs.name, cs.from)
	}
	cs.fromDescription = from.ID.String()
	var next *cowcache.Image
	err = bd.inContainer(from, nil, func(_ Container, rootfs string, _ func() error) error {
		src, err := newSrcRoot(rootfs, desc, false)
		if err != nil {
			return err
		}
		defer src.Close()
		next, err = withSources(src)
		return err
	})
	return next, err
}

// copyFrom resolves --from: a stage name or index, else an image.
func (bd *build) copyFrom(name string) (*cowcache.Image, string, error) {
	for _, st := range bd.done {
		if st.name != "" && strings.EqualFold(st.name, name) {
			return st.img, "stage " + name, nil
		}
	}
	if i, err := strconv.Atoi(name); err == nil {
		if i < 0 || i >= len(bd.done) {
			return nil, "", fmt.Errorf("--from=%d: there is no earlier stage %d", i, i)
		}
		return bd.done[i].img, "stage " + name, nil
	}
	img, err := runner.FindImage(bd.store, name, bd.o.Pull, bd.puller)
	if err != nil {
		return nil, "", fmt.Errorf("--from=%s: not an earlier stage, and %w", name, err)
	}
	return &img, "image " + name, nil
}

// copyHeredoc writes COPY <<EOF files to a temporary directory and copies
// them from there.
func (bd *build) copyHeredoc(cs copyStep, with func(*srcRoot) (*cowcache.Image, error)) (*cowcache.Image, error) {
	dir, err := os.MkdirTemp("", "unionfuse-heredoc-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for _, sc := range cs.sd.SourceContents {
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(sc.Path)), []byte(sc.Data), 0o644); err != nil {
			return nil, err
		}
	}
	src, err := newSrcRoot(dir, "the here-documents", true)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return with(src)
}

// kindOf is how the history names what a COPY copied, as Docker:
// dir:<digest>, file:<digest> or multi:<digest>.
func kindOf(srcs []source) string {
	switch {
	case len(srcs) > 1:
		return "multi"
	case len(srcs) == 1 && srcs[0].isDir:
		return "dir"
	}
	return "file"
}

func isURL(s string) bool {
	for _, p := range []string{"http://", "https://", "git@", "git://"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// mkdirIn makes the directory p (absolute, in the container) below the
// root, resolving links inside the root.
func mkdirIn(rootfs, p string) error {
	full, err := securejoin.SecureJoin(rootfs, p)
	if err != nil {
		return fmt.Errorf("WORKDIR %s: %w", p, err)
	}
	if err := os.MkdirAll(full, 0o755); err != nil {
		return fmt.Errorf("WORKDIR %s: %w", p, trimRoot(err, rootfs))
	}
	return nil
}
