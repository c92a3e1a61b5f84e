package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/unionfuse/unionfuse/cowcache"
	"golang.org/x/sync/errgroup"
)

// Limits on what a registry sends before layers: an index or manifest and
// an image config (the same as load's).
const (
	maxManifestSize = 4 << 20
	maxConfigSize   = 16 << 20
)

// DefaultMaxConcurrent is how many layers a pull downloads at once, as
// docker's --max-concurrent-downloads.
const DefaultMaxConcurrent = 3

// PullOptions tune Pull.
type PullOptions struct {
	Options
	// Platform is the image to take from an index (nil: HostPlatform).
	Platform *v1.Platform
	// MaxConcurrent is how many blobs download at once (0: 3).
	MaxConcurrent int
	// Lazy pulls eStargz layers lazily: only their TOC now, their files'
	// data when read (lazy.go). Other layers are downloaded.
	Lazy bool
}

// PullResult is what Pull did.
type PullResult struct {
	// Digest is the digest the image was pulled by: its index's when it
	// came through one, else its manifest's (docker's "Digest:").
	Digest string
	Image  cowcache.Image
	// UpToDate is true when the store had the image under this name
	// already: nothing was fetched.
	UpToDate bool
	// Warning is set when the image is not for this machine's platform.
	Warning string
}

// Pull fetches the image ref into the store s and names it as docker
// does (ref.Familiar(); a pull by digest gives no name), recording its
// registry digest (RepoDigests). See the package doc for the steps and
// what holds when it fails.
func Pull(ctx context.Context, s *cowcache.Store, ref Reference, o PullOptions) (PullResult, error) {
	res, err := pull(ctx, s, ref, &o)
	if errors.Is(err, cowcache.ErrNotFound) && ctx.Err() == nil {
		// A layer this pull counted on was removed meanwhile (an rmi
		// racing): look again; what was downloaded is still there.
		res, err = pull(ctx, s, ref, &o)
	}
	if err != nil {
		return PullResult{}, s.StorageError(fmt.Errorf("pull %s: %w", ref.Familiar(), err))
	}
	return res, nil
}

// remoteImage is an image manifest and config as a registry gave them.
type remoteImage struct {
	digest      string // what was asked for: index or manifest
	rawManifest []byte
	manifest    *v1.Manifest
	rawConfig   []byte
	config      *v1.ConfigFile
	warning     string
}

func pull(ctx context.Context, s *cowcache.Store, ref Reference, o *PullOptions) (PullResult, error) {
	rr, _, puller, err := o.connect(ctx, ref)
	if err != nil {
		return PullResult{}, err
	}
	img, err := fetchImage(ctx, puller, rr, ref, o)
	if err != nil {
		return PullResult{}, err
	}
	var names []string
	if ref.Tag() != "" {
		n, err := cowcache.NormalizeName(ref.Familiar())
		if err != nil {
			return PullResult{}, err
		}
		names = []string{n}
	}
	rep := &reporter{p: o.Progress}
	jobs := o.MaxConcurrent
	if jobs <= 0 {
		jobs = DefaultMaxConcurrent
	}
	f := newFetcher(s, rr.Context(), puller, &o.Options, rep, jobs)
	f.lazy = o.Lazy
	defer f.close()
	upToDate := stored(s, cowcache.FromBytes(img.rawManifest), names)
	pending, err := fetchLayers(ctx, s, f, img, rep, jobs)
	if err != nil {
		return PullResult{}, err
	}
	stored, err := s.AddImage(cowcache.NewImage{RawConfig: img.rawConfig, RawManifest: img.rawManifest, Layers: pending, Names: names})
	if err != nil {
		return PullResult{}, err
	}
	f.forget()
	if !o.Lazy {
		// A full pull of an image whose layers were pulled lazily
		// before completes them (complete.go).
		for _, id := range stored.Layers {
			if s.IsPartial(id) {
				if err := CompleteLayer(ctx, s, id); err != nil {
					return PullResult{}, err
				}
			}
		}
	}
	if err := s.AddRepoDigest(stored.Manifest, ref.RepoDigest(img.digest)); err != nil {
		return PullResult{}, err
	}
	return PullResult{Digest: img.digest, Image: stored, UpToDate: upToDate && f.none(), Warning: img.warning}, nil
}

// stored reports whether the store has the image of manifest md with all
// of names.
func stored(s *cowcache.Store, md cowcache.Digest, names []string) bool {
	images, err := s.Images()
	if err != nil {
		return false
	}
	for _, img := range images {
		if img.Manifest == md {
			for _, n := range names {
				if !slices.Contains(img.Names, n) {
					return false
				}
			}
			return true
		}
	}
	return false
}

// none reports whether nothing was downloaded.
func (f *fetcher) none() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.blobs) == 0
}

// fetchImage gets ref's manifest (rr: ref resolved for its registry) (through its index for o's platform)
// and config, and checks what unionfuse can store.
func fetchImage(ctx context.Context, puller *remote.Puller, rr name.Reference, ref Reference, o *PullOptions) (*remoteImage, error) {
	desc, err := puller.Get(ctx, rr)
	if err != nil {
		if err = describeError(err); errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("manifest for %s not found: %w", ref, err)
		}
		return nil, err
	}
	img := &remoteImage{digest: desc.Digest.String(), rawManifest: desc.Manifest}
	mt, err := mediaTypeOf(desc.MediaType, desc.Manifest)
	if err != nil {
		return nil, err
	}
	want := HostPlatform()
	if o.Platform != nil {
		want = *o.Platform
	}
	if mt.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
		if err != nil {
			return nil, fmt.Errorf("malformed index %s: %w", shortID(img.digest), err)
		}
		child, err := pickPlatform(idx, want)
		if err != nil {
			return nil, err
		}
		cdesc, err := puller.Get(ctx, rr.Context().Digest(child.Digest.String()))
		if err != nil {
			return nil, describeError(err)
		}
		if mt, err = mediaTypeOf(cdesc.MediaType, cdesc.Manifest); err != nil {
			return nil, err
		}
		if mt.IsIndex() {
			return nil, fmt.Errorf("index %s: its entry for %s is another index", shortID(img.digest), platformString(want))
		}
		img.rawManifest = cdesc.Manifest
	}
	if img.manifest, err = v1.ParseManifest(bytes.NewReader(img.rawManifest)); err != nil {
		return nil, fmt.Errorf("malformed manifest %s: %w", shortID(img.digest), err)
	}
	for _, l := range img.manifest.Layers {
		if !layerTypeOK(l.MediaType) {
			return nil, fmt.Errorf("layer %s: unsupported media type %q", shortID(l.Digest.String()), l.MediaType)
		}
	}
	if err := fetchConfig(ctx, puller, rr.Context().Digest(img.manifest.Config.Digest.String()), img); err != nil {
		return nil, err
	}
	got := v1.Platform{OS: img.config.OS, Architecture: img.config.Architecture, Variant: img.config.Variant}
	if got.OS != want.OS || got.Architecture != want.Architecture {
		if o.Platform != nil {
			return nil, fmt.Errorf("image with reference %s was found but does not match the specified platform: wanted %s, actual: %s",
				ref.Familiar(), platformString(want), platformString(got))
		}
		img.warning = fmt.Sprintf("The requested image's platform (%s) does not match the detected host platform (%s) and no specific platform was requested",
			platformString(got), platformString(want))
	}
	return img, nil
}

// mediaTypeOf returns a manifest's media type: the registry's
// Content-Type, else the manifest's own mediaType field. Only docker v2
// schema 2 and OCI manifests and indexes are taken.
func mediaTypeOf(mt types.MediaType, raw []byte) (types.MediaType, error) {
	if len(raw) > maxManifestSize {
		return "", fmt.Errorf("manifest of %d bytes: more than the %d allowed", len(raw), maxManifestSize)
	}
	if !mt.IsIndex() && !mt.IsImage() && !mt.IsSchema1() {
		var probe struct {
			SchemaVersion int             `json:"schemaVersion"`
			MediaType     types.MediaType `json:"mediaType"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			return "", fmt.Errorf("malformed manifest: %w", err)
		}
		if probe.SchemaVersion == 1 {
			mt = types.DockerManifestSchema1
		} else if probe.MediaType != "" {
			mt = probe.MediaType
		}
	}
	switch {
	case mt.IsSchema1():
		return "", errors.New("the image has a docker schema-1 manifest, which unionfuse does not read (it was deprecated in 2015): push it again with a current docker, podman or skopeo")
	case mt.IsIndex(), mt.IsImage():
		return mt, nil
	}
	return "", fmt.Errorf("unsupported manifest media type %q", mt)
}

// layerTypeOK reports whether a layer of media type mt can be unpacked:
// docker's and OCI's tar layers, plain, gzip or zstd.
func layerTypeOK(mt types.MediaType) bool {
	switch mt {
	case types.DockerLayer, types.DockerUncompressedLayer, types.OCILayer, types.OCILayerZStd, types.OCIUncompressedLayer:
		return true
	}
	return false
}

// fetchConfig reads and checks the image config.
func fetchConfig(ctx context.Context, puller *remote.Puller, ref name.Digest, img *remoteImage) error {
	cd := img.manifest.Config
	if cd.Size > maxConfigSize {
		return fmt.Errorf("config of %d bytes: more than the %d allowed", cd.Size, maxConfigSize)
	}
	l, err := puller.Layer(ctx, ref)
	if err != nil {
		return describeError(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return describeError(err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, maxConfigSize+1))
	if err != nil {
		return fmt.Errorf("config %s: %w", shortID(cd.Digest.String()), describeError(err))
	}
	if got := cowcache.FromBytes(raw); string(got) != cd.Digest.String() {
		return fmt.Errorf("config %s: %w: the registry sent content with digest %s", cd.Digest, cowcache.ErrDigestMismatch, got)
	}
	img.rawConfig = raw
	if img.config, err = v1.ParseConfigFile(bytes.NewReader(raw)); err != nil {
		return fmt.Errorf("config %s: %w", shortID(cd.Digest.String()), err)
	}
	if n, m := len(img.config.RootFS.DiffIDs), len(img.manifest.Layers); n != m {
		return fmt.Errorf("config %s has %d layers, the manifest %d", shortID(cd.Digest.String()), n, m)
	}
	return nil
}

// fetchLayers downloads the layers the store lacks, jobs at a time, and
// unpacks each as soon as it is downloaded, also jobs at a time: a layer
// is a directory of its own, whose files do not depend on the layers
// below, so layers need not wait for each other (docker unpacks one after
// the other). "Pull complete" is still reported in order, bottom first.
// It returns the pending layers for AddImage (nil for those the store
// has).
func fetchLayers(ctx context.Context, s *cowcache.Store, f *fetcher, img *remoteImage, rep *reporter, jobs int) ([]*cowcache.Pending, error) {
	layers := img.manifest.Layers
	diffIDs := make([]cowcache.Digest, len(layers))
	for i, d := range img.config.RootFS.DiffIDs {
		diffIDs[i] = cowcache.Digest(d.String())
	}
	chain := cowcache.ChainIDs(diffIDs)
	need := make([]bool, len(layers))
	for i, l := range layers {
		need[i] = !s.HasLayerBlob(chain[i], cowcache.Digest(l.Digest.String()))
		status := AlreadyExists
		if need[i] {
			status = PullingFSLayer
		}
		rep.report(Event{ID: shortID(l.Digest.String()), Status: status})
	}
	fetches := make([]*fetch, len(layers))
	lazy := make([]bool, len(layers))
	for i, l := range layers {
		lazy[i] = f.lazy && isEstargz(l)
		if need[i] && !lazy[i] {
			fetches[i] = f.start(ctx, l)
		}
	}
	pending := make([]*cowcache.Pending, len(layers))
	done := newInOrder(need, func(i int) { rep.report(Event{ID: shortID(layers[i].Digest.String()), Status: PullComplete}) })
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for i, l := range layers {
		if !need[i] {
			continue
		}
		g.Go(func() error {
			parent := cowcache.Digest("")
			if i > 0 {
				parent = chain[i-1]
			}
			if lazy[i] {
				p, err := pullLazy(gctx, s, f, l, parent, diffIDs[i])
				pending[i] = p
				if err == nil {
					done.complete(i)
				}
				return err
			}
			dl, err := fetches[i].wait(gctx)
			if err != nil {
				return err
			}
			p, err := extract(s, dl, l, parent, diffIDs[i], rep)
			pending[i] = p
			if err == nil {
				done.complete(i)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		for _, p := range pending {
			if p != nil {
				p.Abort()
			}
		}
		return nil, err
	}
	return pending, nil
}

// inOrder calls report for each index in turn once it and every index
// before it that is wanted are complete.
type inOrder struct {
	mu     sync.Mutex
	want   []bool
	done   []bool
	next   int
	report func(int)
}

func newInOrder(want []bool, report func(int)) *inOrder {
	return &inOrder{want: want, done: make([]bool, len(want)), report: report}
}

func (o *inOrder) complete(i int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done[i] = true
	for o.next < len(o.want) && (!o.want[o.next] || o.done[o.next]) {
		if o.want[o.next] {
			o.report(o.next)
		}
		o.next++
	}
}

// extract unpacks the downloaded layer l on parent and checks its DiffID.
func extract(s *cowcache.Store, dl *cowcache.Download, l v1.Descriptor, parent, diffID cowcache.Digest, rep *reporter) (*cowcache.Pending, error) {
	id := shortID(l.Digest.String())
	_, size, err := dl.Reader()
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", id, err)
	}
	p, err := s.Prepare(parent)
	if err != nil {
		return nil, err
	}
	pr := &progressReader{p: progressWriter{w: discard{}, rep: rep, id: id, status: Extracting, total: size}}
	u, err := p.ApplyDownload(dl, func(r io.Reader) io.Reader { pr.r = r; return pr })
	if err == nil && u.DiffID != diffID {
		err = fmt.Errorf("%w: its content has DiffID %s, the config says %s", cowcache.ErrDigestMismatch, u.DiffID, diffID)
	}
	if err == nil && u.Digest != cowcache.Digest(l.Digest.String()) {
		err = fmt.Errorf("%w: unpacked %s, the manifest says %s", cowcache.ErrDigestMismatch, u.Digest, l.Digest)
	}
	if err == nil {
		// Synced now, while other layers download and unpack, rather
		// than all at the end in AddImage.
		err = p.Finish()
	}
	if err != nil {
		p.Abort()
		return nil, fmt.Errorf("layer %s: %w", id, err)
	}
	pr.p.flush()
	return p, nil
}
