package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/registry"
	"github.com/unionfuse/unionfuse/runner"
)

// cliPuller is the Puller that run and build give the runner and the
// builder: registry.Pull with docker's lines on out (nil: quiet).
type cliPuller struct {
	store *cowcache.Store
	flags *registryFlags // read when a pull is needed, not before
	out   *os.File
	// announce says "Unable to find image 'NAME' locally" first when the
	// store lacks the image, as docker run does (docker build does not).
	announce bool
}

var _ runner.Puller = (*cliPuller)(nil)

// Pull pulls ref; Ctrl-C during the pull stops it with nothing partial
// stored.
func (p *cliPuller) Pull(ref registry.Reference, missing bool) (cowcache.Image, error) {
	if missing && p.announce && p.out != nil {
		fmt.Fprintf(p.out, "Unable to find image '%s' locally\n", ref.Familiar())
	}
	o, err := p.flags.options()
	if err != nil {
		return cowcache.Image{}, err
	}
	ctx, stop := interruptible()
	defer stop()
	res, err := pullImage(ctx, p.store, ref, registry.PullOptions{Options: o, Lazy: true}, p.out)
	if err != nil && ctx.Err() != nil {
		return cowcache.Image{}, fmt.Errorf("interrupted: nothing partial was stored: %w", err)
	}
	return res.Image, err
}

// pullImage pulls ref into s and prints on out what docker pull prints
// for one image, from "TAG: Pulling from REPOSITORY" to "Status: ..."
// (nil out: nothing but a platform warning on stderr).
func pullImage(ctx context.Context, s *cowcache.Store, ref registry.Reference, o registry.PullOptions, out *os.File) (registry.PullResult, error) {
	var d *layerDisplay
	if out != nil {
		d = newLayerDisplay(out)
		id := ref.Tag()
		if id == "" {
			id = ref.Digest()
		}
		d.header = id + ": Pulling from " + ref.Path()
		o.Progress = d
	}
	res, err := registry.Pull(ctx, s, ref, o)
	if err != nil {
		return res, err
	}
	if res.Warning != "" {
		fmt.Fprintf(os.Stderr, "WARNING: %s\n", res.Warning)
	}
	if out != nil {
		d.printHeader()
		fmt.Fprintf(out, "Digest: %s\n", res.Digest)
		if res.UpToDate {
			fmt.Fprintf(out, "Status: Image is up to date for %s\n", ref.Familiar())
		} else {
			fmt.Fprintf(out, "Status: Downloaded newer image for %s\n", ref.Familiar())
		}
	}
	return res, nil
}

// autoPullFlags are the flags of run and build that say when and how
// the image is pulled: --pull and the registry flags.
type autoPullFlags struct {
	registryFlags
	pull pullPolicy
}

// add registers them on fset; with optional, --pull alone means
// --pull=always (build, as buildx and podman build).
func (f *autoPullFlags) add(fset *pflag.FlagSet, optional bool) {
	f.registryFlags.add(fset)
	fset.Var(&f.pull, "pull", "when to pull the image: `POLICY` missing (the store lacks it), always, never, or newer (always, but use the stored image when the registry cannot be reached)")
	if optional {
		fset.Lookup("pull").NoOptDefVal = "always"
	}
}

// puller returns the Puller of s the flags ask for, printing on out
// (nil: quiet); announce says "Unable to find image" first.
func (f *autoPullFlags) puller(s *cowcache.Store, out *os.File, announce bool) *cliPuller {
	return &cliPuller{store: s, flags: &f.registryFlags, out: out, announce: announce}
}

// pullPolicy is the value of --pull.
type pullPolicy struct {
	policy runner.PullPolicy
	text   string
}

func (p *pullPolicy) String() string {
	if p.text == "" {
		return "missing"
	}
	return p.text
}

func (p *pullPolicy) Set(s string) error {
	v, err := runner.ParsePullPolicy(s)
	if err != nil {
		return err
	}
	p.policy, p.text = v, s
	return nil
}

func (p *pullPolicy) Type() string { return "string" }
