package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
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
	// layer so (recompressing where needed).
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
	case "", "gzip", "zstd":
	default:
		return PushResult{}, fmt.Errorf("compression %q: want gzip or zstd", o.Compression)
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
	out, cleanup, err := convert(ctx, s, stored, o.Compression, rep)
	defer cleanup()
	if err != nil {
		return PushResult{}, err
	}
	sources := mountSources(s, rr.Context())
	jobs := o.MaxConcurrent
	if jobs <= 0 {
		jobs = DefaultMaxConcurrentUploads
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, l := range out.layers {
		if l.seen {
			continue // the same blob twice in one image
		}
		g.Go(func() error { return pushLayer(gctx, puller, pusher, rr.Context(), l, sources[l.desc.Digest], rep) })
	}
	if err := g.Wait(); err != nil {
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
	if err := s.AddRepoDigest(img.Manifest, ref.RepoDigest(string(d))); err != nil {
		return PushResult{}, err
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

// outImage is the image as it is pushed: partial.CompressedImageCore over
// the stored config and the (maybe recompressed) layers.
type outImage struct {
	rawConfig   []byte
	rawManifest []byte
	mediaType   types.MediaType
	layers      []*outLayer
}

var _ partial.CompressedImageCore = (*outImage)(nil)

func (o *outImage) RawConfigFile() ([]byte, error)      { return o.rawConfig, nil }
func (o *outImage) MediaType() (types.MediaType, error) { return o.mediaType, nil }
func (o *outImage) RawManifest() ([]byte, error)        { return o.rawManifest, nil }

// LayerByDigest returns a layer of the pushed manifest.
func (o *outImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range o.layers {
		if l.desc.Digest == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("blob %s: not a layer of the image", h)
}

// outLayer is one layer blob to push; opened records whether its content
// was read (it was uploaded, not found nor mounted).
type outLayer struct {
	id     string // as shown: the short DiffID, as docker push shows it
	desc   v1.Descriptor
	open   func() (io.ReadCloser, error)
	rep    *reporter
	opened atomic.Bool
	seen   bool // an earlier layer of the image is the same blob
}

func (l *outLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *outLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *outLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }

// Compressed opens the blob, reporting "Pushing" as it is read.
func (l *outLayer) Compressed() (io.ReadCloser, error) {
	l.opened.Store(true)
	rc, err := l.open()
	if err != nil {
		return nil, err
	}
	id := l.id
	return struct {
		io.Reader
		io.Closer
	}{&progressReader{r: rc, p: progressWriter{w: discard{}, rep: l.rep, id: id, status: Pushing, total: l.desc.Size}}, rc}, nil
}

// convert returns the image to push: stored's blobs, recompressed where
// compression asks (see PushOptions), with a new manifest if any changed.
// It reports "Preparing" for each layer, top first, as docker does,
// naming each by its DiffID, which recompression does not change.
func convert(ctx context.Context, s *cowcache.Store, stored v1.Image, compression string, rep *reporter) (*outImage, func(), error) {
	var cleanups []func()
	cleanup := func() {
		for _, c := range cleanups {
			c()
		}
	}
	raw, err := stored.RawManifest()
	if err != nil {
		return nil, cleanup, err
	}
	m, err := stored.Manifest()
	if err != nil {
		return nil, cleanup, err
	}
	cfg, err := stored.RawConfigFile()
	if err != nil {
		return nil, cleanup, err
	}
	cf, err := stored.ConfigFile()
	if err != nil {
		return nil, cleanup, err
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, cleanup, fmt.Errorf("the image's config has %d layers, its manifest %d", len(cf.RootFS.DiffIDs), len(m.Layers))
	}
	ids := make([]string, len(m.Layers))
	for i, d := range cf.RootFS.DiffIDs {
		ids[i] = shortID(d.String())
	}
	mt := m.MediaType
	if mt == "" {
		mt = types.OCIManifestSchema1
	}
	out := &outImage{rawConfig: cfg, mediaType: mt}
	for i := len(m.Layers) - 1; i >= 0; i-- {
		rep.report(Event{ID: ids[i], Status: Preparing})
	}
	changed := false
	seen := map[v1.Hash]bool{}
	for i, desc := range m.Layers {
		sl, err := stored.LayerByDigest(desc.Digest)
		if err != nil {
			return nil, cleanup, err
		}
		l := &outLayer{id: ids[i], desc: desc, open: sl.Compressed, rep: rep}
		if want := targetCompression(desc.MediaType, compression); want != "" {
			if err := ctx.Err(); err != nil {
				return nil, cleanup, err
			}
			nl, done, err := recompress(s, sl, desc, want, mt)
			cleanups = append(cleanups, done)
			if err != nil {
				return nil, cleanup, err
			}
			l.desc, l.open = nl.desc, nl.open
			changed = true
		}
		l.seen = seen[l.desc.Digest]
		seen[l.desc.Digest] = true
		out.layers = append(out.layers, l)
	}
	if !changed {
		out.rawManifest = raw
		return out, cleanup, nil
	}
	nm := m.DeepCopy()
	for i, l := range out.layers {
		nm.Layers[i] = l.desc
	}
	if slices.ContainsFunc(out.layers, func(l *outLayer) bool { return l.desc.MediaType == types.OCILayerZStd }) && mt != types.OCIManifestSchema1 {
		// zstd has no docker media type: the manifest becomes OCI.
		nm.MediaType = types.OCIManifestSchema1
		nm.Config.MediaType = types.OCIConfigJSON
		for i := range nm.Layers {
			if nm.Layers[i].MediaType == types.DockerLayer {
				nm.Layers[i].MediaType = types.OCILayer
			}
		}
		out.mediaType = types.OCIManifestSchema1
	}
	if out.rawManifest, err = json.Marshal(nm); err != nil {
		return nil, cleanup, err
	}
	return out, cleanup, nil
}

// targetCompression returns the compression a layer of media type mt
// must be converted to for a push asking for compression, or "" to send
// it as stored.
func targetCompression(mt types.MediaType, compression string) string {
	have := compressionOf(mt)
	switch {
	case compression == "" && have == "":
		return "gzip"
	case compression != "" && have != compression:
		return compression
	}
	return ""
}

// compressionOf returns "gzip", "zstd" or "" (uncompressed) for a layer
// media type.
func compressionOf(mt types.MediaType) string {
	switch mt {
	case types.DockerLayer, types.OCILayer:
		return "gzip"
	case types.OCILayerZStd:
		return "zstd"
	}
	return ""
}
