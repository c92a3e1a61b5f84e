package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/registry"
)

var pushCmd = &command{
	name:  "push",
	usage: "unionfuse push [-q] [--compression gzip|zstd|estargz] NAME[:TAG]",
	help: `Push an image of the layer store to a registry, as docker push does: give
it the registry's name first with 'unionfuse tag' (for example
'unionfuse tag app localhost:5000/app'). Layers the registry has are not
sent ("Layer already exists"); layers another repository of the same
registry has are mounted from it ("Mounted from ..."). Uncompressed
layers are sent gzip-compressed (or zstd with --compression zstd), which
changes the manifest's digest but not the image id. --compression estargz
sends eStargz layers, which other clients read as gzip and unionfuse pulls
lazily (the image runs before its layers are downloaded); it changes the
layers' DiffIDs and so the pushed image's id. See docs/registry.md.`,
	options: optionsOf(pushFlags),
	run:     runPush,
}

type pushArgs struct {
	storeFlags
	registryFlags
	quiet       bool
	compression string
	jobs        int
}

func pushFlags() (*pflag.FlagSet, *pushArgs) {
	a := &pushArgs{}
	fset := pflag.NewFlagSet("push", pflag.ContinueOnError)
	a.storeFlags.add(fset)
	a.registryFlags.add(fset)
	fset.BoolVarP(&a.quiet, "quiet", "q", false, "print only the pushed name")
	fset.StringVar(&a.compression, "compression", "", "send every layer compressed with `gzip|zstd|estargz` (default: compressed layers as stored, the others gzip)")
	fset.IntVar(&a.jobs, "max-concurrent-uploads", registry.DefaultMaxConcurrentUploads, "upload at most `N` layers at once")
	return fset, a
}

func runPush(cmd *command, args []string) int {
	fset, a := pushFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(cmd, "want one NAME[:TAG], got %d arguments", len(pos))
	}
	ref, err := registry.ParseReference(pos[0])
	if err != nil {
		return usageError(cmd, "%v", err)
	}
	switch a.compression {
	case "", "gzip", "zstd", "estargz":
	default:
		return usageError(cmd, "--compression: want gzip, zstd or estargz, not %q", a.compression)
	}
	if a.jobs < 1 {
		return usageError(cmd, "--max-concurrent-uploads must be at least 1")
	}
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	ro, err := a.registryFlags.options()
	if err != nil {
		return fail(err)
	}
	o := registry.PushOptions{Options: ro, Compression: a.compression, MaxConcurrent: a.jobs}
	if !a.quiet {
		o.Progress = newLayerDisplay(os.Stdout)
		fmt.Printf("The push refers to repository [%s]\n", ref.FullRepository())
	}
	ctx, stop := interruptible()
	defer stop()
	res, err := registry.Push(ctx, s, ref, o)
	if err != nil {
		return failRegistry(ctx, err)
	}
	if a.quiet {
		fmt.Println(ref.String())
		return exitOK
	}
	fmt.Printf("%s: digest: %s size: %d\n", ref.Tag(), res.Digest, res.Size)
	return exitOK
}
