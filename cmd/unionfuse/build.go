package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/builder"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/runner"
)

var buildCmd = &command{
	name:  "build",
	usage: "unionfuse build [-t NAME[:TAG]]... [-f Dockerfile] [--build-arg K=V]... [--target STAGE] [--no-cache] [--pull[=POLICY]] [-q] [--iidfile FILE] CONTEXT",
	help: `Build an image from a Dockerfile, as Docker's classic builder does: each
instruction makes an image from the one before, RUN runs in a container
(no network), COPY and ADD copy from CONTEXT (minus .dockerignore) into a
container's root, and each step is cached: a step whose parent image,
instruction (after ARG and ENV expansion) and COPY/ADD sources are
unchanged prints ' ---> Using cache' and reuses its image. A failed step
leaves no image, container or mount; the steps before it stay cached.
FROM pulls an image the store lacks (--pull says when).
See docs/build.md.`,
	options: optionsOf(buildFlags),
	run:     runBuild,
}

type buildArgs struct {
	storeFlags
	autoPullFlags
	tags, buildArgs []string
	file, target    string
	iidfile         string
	noCache, quiet  bool
}

func buildFlags() (*pflag.FlagSet, *buildArgs) {
	a := &buildArgs{}
	fset := pflag.NewFlagSet("build", pflag.ContinueOnError)
	a.storeFlags.add(fset)
	a.autoPullFlags.add(fset, true)
	fset.StringArrayVarP(&a.tags, "tag", "t", nil, "name the image `NAME[:TAG]` (repeatable)")
	fset.StringVarP(&a.file, "file", "f", "", "the `Dockerfile` (default CONTEXT/Dockerfile)")
	fset.StringArrayVar(&a.buildArgs, "build-arg", nil, "set the ARG `K=V` (K alone takes the value from this environment)")
	fset.StringVar(&a.target, "target", "", "build up to the stage `STAGE`")
	fset.BoolVar(&a.noCache, "no-cache", false, "do not use the build cache")
	fset.BoolVarP(&a.quiet, "quiet", "q", false, "print only the image id")
	fset.StringVar(&a.iidfile, "iidfile", "", "write the image id to `FILE`")
	return fset, a
}

func runBuild(cmd *command, args []string) int {
	fset, a := buildFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(cmd, "want one CONTEXT directory, got %d arguments", len(pos))
	}
	o := builder.Options{Context: pos[0], Dockerfile: a.file, Tags: a.tags, Target: a.target,
		NoCache: a.noCache, BuildArgs: map[string]string{}, Pull: a.pull.policy}
	for _, kv := range a.buildArgs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				continue // as Docker: an unset variable is no build arg
			}
		}
		o.BuildArgs[k] = v
	}
	if !a.quiet {
		o.Out = os.Stdout
	}
	var iid *os.File
	if a.iidfile != "" {
		// Opened first: a path that cannot be written fails before the
		// build. A failed build leaves no file (docker removes it first).
		f, err := os.OpenFile(a.iidfile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return fail(fmt.Errorf("--iidfile: %w", err))
		}
		iid = f
		defer iid.Close()
	}
	ctx, stop := interruptible()
	defer stop()
	img, err := a.build(ctx, o)
	if err == nil && a.quiet {
		fmt.Println(img.ID)
	}
	if err == nil && iid != nil {
		if _, err = iid.WriteString(string(img.ID)); err == nil {
			err = iid.Close()
		}
	}
	if err != nil {
		if iid != nil {
			if fi, serr := os.Lstat(a.iidfile); serr == nil && fi.Mode().IsRegular() {
				os.Remove(a.iidfile)
			}
		}
		if interrupted(ctx, err) {
			fail(err)
			return exitInterrupted // as a shell reports Ctrl-C
		}
		return fail(err)
	}
	return exitOK
}

// build opens the store and builds.
func (a *buildArgs) build(ctx context.Context, o builder.Options) (cowcache.Image, error) {
	s, err := a.open()
	if err != nil {
		return cowcache.Image{}, err
	}
	defer s.Close()
	exec := builder.RunnerExecutor{Runner: runner.New(s), CatchSignals: catchSignals, Warn: warn}
	var out *os.File
	if !a.quiet {
		out = os.Stdout
	}
	return builder.New(s, exec).WithPuller(a.puller(s, out, false)).Build(ctx, o)
}
