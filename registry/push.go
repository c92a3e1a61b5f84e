package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/unionfuse/unionfuse/cowcache"
	"golang.org/x/sync/errgroup"
)

// DefaultMaxConcurrentUploads is how many layers a push sends at once, as
// docker's --max-concurrent-uploads.
const DefaultMaxConcurrentUploads = 5

// PushOptions tune Push.
type PushOptions struct {
	Options
	// Compression is how layers are sent: "" keeps compressed layers as
	// stored and gzips uncompressed ones; "gzip" or "zstd" sends every
	// layer so (recompressing where needed); "estargz" converts layers
	// to eStargz (gzip that can be pulled lazily, estargz.go), which
	// changes their DiffIDs and so the pushed image's id.
	Compression string
	// MaxConcurrent is how many layers upload at once (0: 5).
	MaxConcurrent int
}

// PushResult is what Push did.
type PushResult struct {
	Digest string // the manifest's, as the registry now has it
	Size   int64  // the manifest's size
}

// ErrNoSuchImage is returned (wrapped) by Push for an image the store
// does not have.
var ErrNoSuchImage = errors.New("an image does not exist locally with the tag")

// Push sends the image the store names ref to ref's registry: layers the
// registry has are skipped, layers another repository of the registry
// has are mounted from it, the others uploaded; then the config and the
// manifest. The registry digest is recorded (RepoDigests).
func Push(ctx context.Context, s *cowcache.Store, ref Reference, o PushOptions) (PushResult, error) {
	res, err := push(ctx, s, ref, &o)
	if err != nil {
		return PushResult{}, fmt.Errorf("push %s: %w", ref.Familiar(), err)
	}
	return res, nil
}

func push(ctx context.Context, s *cowcache.Store, ref Reference, o *PushOptions) (PushResult, error) {
	if ref.Digest() != "" {
		return PushResult{}, errors.New("cannot push a reference by digest: give a tag")
	}
	switch o.Compression {
	case "", "gzip", "zstd", estargzCompression:
	default:
		return PushResult{}, fmt.Errorf("compression %q: want gzip, zstd or estargz", o.Compression)
	}
	img, err := s.Image(ref.Familiar())
	if errors.Is(err, cowcache.ErrNotFound) {
		return PushResult{}, fmt.Errorf("%w: %s", ErrNoSuchImage, ref.Repository())
	}
	if err != nil {
		return PushResult{}, err
	}
	stored, err := s.V1Image(img)
	if err != nil {
		return PushResult{}, err
	}
	rr, ropts, puller, err := o.connect(ctx, ref)
	if err != nil {
		return PushResult{}, err
	}
	pusher, err := remote.NewPusher(ropts...)
	if err != nil {
		return PushResult{}, err
	}
	rep := &reporter{p: o.Progress}
	out, err := plan(s, stored, o.Compression, rep)
	defer out.cleanup()
	if err != nil {
		return PushResult{}, err
	}
	sources := mountSources(s, rr.Context())
	jobs := o.MaxConcurrent
	if jobs <= 0 {
		jobs = DefaultMaxConcurrentUploads
	}
	// Each layer is compressed (where it must be) and sent at once, as
	// many at a time as uploads: the compressing of one overlaps the
	// sending of others.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, l := range out.layers {
		if l.same != nil {
			continue // the same blob twice in one image
		}
		g.Go(func() error {
			if err := out.compress(gctx, l); err != nil {
				return err
			}
			return pushLayer(gctx, puller, pusher, rr.Context(), l, sources[l.desc.Digest], rep)
		})
	}
	if err := g.Wait(); err != nil {
		return PushResult{}, err
	}
	if err := out.finish(); err != nil {
		return PushResult{}, err
	}
	full, err := partial.CompressedToImage(out)
	if err != nil {
		return PushResult{}, err
	}
	if err := pusher.Push(ctx, rr, full); err != nil {
		return PushResult{}, describeError(err)
	}
	d := cowcache.FromBytes(out.rawManifest)
	// An eStargz push names another config (another image id): its
	// digest is not one of the stored image's RepoDigests.
	if cowcache.FromBytes(out.rawConfig) == img.ID {
		if err := s.AddRepoDigest(img.Manifest, ref.RepoDigest(string(d))); err != nil {
			return PushResult{}, err
		}
	}
	return PushResult{Digest: string(d), Size: int64(len(out.rawManifest))}, nil
}

// mountSources returns, for each blob the store knows a repository of
// repo's registry to hold, those repositories: the ones that the images
// with the blob were pulled from or pushed to. The registry may mount the
// blob from there instead of receiving it again, as docker does with the
// record it keeps of each layer's sources.
func mountSources(s *cowcache.Store, repo name.Repository) map[v1.Hash][]name.Repository {
	all, err := s.RepoDigests()
	if err != nil {
		return nil
	}
	images, err := s.Images()
	if err != nil {
		return nil
	}
	out := map[v1.Hash][]name.Repository{}
	for _, img := range images {
		var repos []name.Repository
		for _, rd := range all[img.Manifest] {
			r, _, _ := strings.Cut(rd, "@")
			ref, err := ParseReference(r)
			if err != nil || ref.Registry() != registryName(repo.Registry) || ref.Path() == repo.RepositoryStr() {
				continue
			}
			repos = append(repos, repo.Registry.Repo(ref.Path()))
		}
		if len(repos) == 0 {
			continue
		}
		vi, err := s.V1Image(img)
		if err != nil {
			continue
		}
		m, err := vi.Manifest()
		if err != nil {
			continue
		}
		for _, l := range m.Layers {
			for _, r := range repos {
				if !slices.Contains(out[l.Digest], r) {
					out[l.Digest] = append(out[l.Digest], r)
				}
			}
		}
	}
	return out
}

// pushLayer sends one layer unless the registry has it: "Layer already
// exists", "Mounted from ...", or "Pushed".
func pushLayer(ctx context.Context, puller *remote.Puller, pusher *remote.Pusher, repo name.Repository, l *outLayer, sources []name.Repository, rep *reporter) error {
	id := l.id
	if rl, err := puller.Layer(ctx, repo.Digest(l.desc.Digest.String())); err == nil {
		if ok, err := partial.Exists(rl); err == nil && ok {
			rep.report(Event{ID: id, Status: LayerExists})
			return nil
		}
	}
	layer, err := partial.CompressedToLayer(l)
	if err != nil {
		return err
	}
	var up v1.Layer = layer
	if len(sources) > 0 {
		up = &remote.MountableLayer{Layer: layer, Reference: sources[0].Digest(l.desc.Digest.String())}
	}
	if err := pusher.Upload(ctx, repo, up); err != nil {
		return fmt.Errorf("layer %s: %w", id, describeError(err))
	}
	if l.opened.Load() {
		rep.report(Event{ID: id, Status: Pushed})
	} else {
		from := ""
		if len(sources) > 0 {
			from = sources[0].RepositoryStr()
		}
		rep.report(Event{ID: id, Status: MountedFrom, From: from})
	}
	return nil
}
