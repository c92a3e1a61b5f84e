package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/registry"
)

var pullCmd = &command{
	name:  "pull",
	usage: "unionfuse pull [-q] [-a] [--platform OS/ARCH[/VARIANT]] NAME[:TAG|@DIGEST]",
	help: `Pull an image from a registry into the layer store, as docker pull does.
NAME follows docker's rules: "busybox" is docker.io/library/busybox:latest,
"localhost:5000/app" the repository app of the registry localhost:5000.
An image index (several platforms) gives the image for this machine, or
for --platform. Layers download and unpack in parallel;
layers the store has are not fetched ("Already exists"). Every blob is
checked against its digest; on any error or Ctrl-C nothing partial is
stored, and the next pull goes on from what was downloaded. Layers in
eStargz (push --compression estargz) are pulled lazily: only their table
of contents now, each file's data from the registry when it is first
read; --lazy=false downloads them too. See docs/registry.md.`,
	options: optionsOf(pullFlags),
	run:     runPull,
}

type pullArgs struct {
	storeFlags
	limitFlags
	registryFlags
	quiet, allTags bool
	platform       string
	jobs           int
	lazy           bool
}

func pullFlags() (*pflag.FlagSet, *pullArgs) {
	a := &pullArgs{}
	fset := pflag.NewFlagSet("pull", pflag.ContinueOnError)
	a.storeFlags.add(fset)
	a.limitFlags.add(fset)
	a.registryFlags.add(fset)
	fset.BoolVarP(&a.quiet, "quiet", "q", false, "print only the image's full name")
	fset.BoolVarP(&a.allTags, "all-tags", "a", false, "pull every tag of the repository")
	fset.StringVar(&a.platform, "platform", "", "take the image for `OS/ARCH[/VARIANT]` from an index (default: this machine's)")
	fset.BoolVar(&a.lazy, "lazy", true, "pull eStargz layers lazily: their files' data when first read (--lazy=false: download every layer now)")
	fset.IntVar(&a.jobs, "max-concurrent-downloads", registry.DefaultMaxConcurrent, "download at most `N` layers at once")
	return fset, a
}

func runPull(cmd *command, args []string) int {
	fset, a := pullFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(cmd, "want one NAME[:TAG|@DIGEST], got %d arguments", len(pos))
	}
	ref, err := registry.ParseReference(pos[0])
	if err != nil {
		return usageError(cmd, "%v", err)
	}
	if a.jobs < 1 {
		return usageError(cmd, "--max-concurrent-downloads must be at least 1")
	}
	ro, err := a.registryFlags.options()
	if err != nil {
		return fail(err)
	}
	o := registry.PullOptions{Options: ro, MaxConcurrent: a.jobs, Lazy: a.lazy}
	if a.platform != "" {
		p, err := registry.ParsePlatform(a.platform)
		if err != nil {
			return usageError(cmd, "%v", err)
		}
		o.Platform = &p
	}
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	if err := a.apply(s); err != nil {
		return usageError(cmd, "%v", err)
	}
	ctx, stop := interruptible()
	defer stop()
	refs := []registry.Reference{ref}
	if a.allTags {
		if ref.Tag() != "" && !ref.DefaultTag() || ref.Digest() != "" {
			return usageError(cmd, "tag can't be used with --all-tags/-a")
		}
		if refs, err = registry.Tags(ctx, ref, o.Options); err != nil {
			return failRegistry(ctx, err)
		}
	}
	var out *os.File
	if !a.quiet {
		out = os.Stdout
		if ref.DefaultTag() && !a.allTags {
			fmt.Println("Using default tag: latest")
		}
	}
	for _, r := range refs {
		if _, err := pullImage(ctx, s, r, o, out); err != nil {
			return failRegistry(ctx, err)
		}
		if !a.allTags {
			fmt.Println(r.String())
		}
	}
	if a.allTags {
		fmt.Println(ref.FullRepository())
	}
	return exitOK
}
