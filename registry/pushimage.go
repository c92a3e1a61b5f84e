package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/unionfuse/unionfuse/cowcache"
)

// outImage is the image as it is pushed: partial.CompressedImageCore over
// the stored config and the (maybe recompressed) layers. plan makes it,
// compress readies each layer, finish writes the manifest.
type outImage struct {
	s           *cowcache.Store
	rawConfig   []byte
	rawManifest []byte // the stored one until finish
	manifest    *v1.Manifest
	mediaType   types.MediaType
	layers      []*outLayer

	mu       sync.Mutex
	cleanups []func() // the recompressed layers' temporary files
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
	stored v1.Layer
	want   string  // the compression to convert to ("": send as stored)
	diffID v1.Hash // set when the conversion changed the DiffID (eStargz)
	same   *outLayer
	rep    *reporter
	opened atomic.Bool
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
	return struct {
		io.Reader
		io.Closer
	}{&progressReader{r: rc, p: progressWriter{w: discard{}, rep: l.rep, id: l.id, status: Pushing, total: l.desc.Size}}, rc}, nil
}

// plan returns the image to push: stored's blobs, to be recompressed
// where compression asks (see PushOptions) by compress, each layer with
// the descriptor it is pushed as. It reports "Preparing" for each layer,
// top first, as docker does, naming each by its DiffID, which
// recompression does not change.
func plan(s *cowcache.Store, stored v1.Image, compression string, rep *reporter) (*outImage, error) {
	out := &outImage{s: s}
	var err error
	if out.rawManifest, err = stored.RawManifest(); err != nil {
		return out, err
	}
	if out.manifest, err = stored.Manifest(); err != nil {
		return out, err
	}
	if out.rawConfig, err = stored.RawConfigFile(); err != nil {
		return out, err
	}
	cf, err := stored.ConfigFile()
	if err != nil {
		return out, err
	}
	m := out.manifest
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return out, fmt.Errorf("the image's config has %d layers, its manifest %d", len(cf.RootFS.DiffIDs), len(m.Layers))
	}
	out.mediaType = m.MediaType
	if out.mediaType == "" {
		out.mediaType = types.OCIManifestSchema1
	}
	for i := len(m.Layers) - 1; i >= 0; i-- {
		rep.report(Event{ID: shortID(cf.RootFS.DiffIDs[i].String()), Status: Preparing})
	}
	first := map[v1.Hash]*outLayer{}
	for i, desc := range m.Layers {
		sl, err := stored.LayerByDigest(desc.Digest)
		if err != nil {
			return out, err
		}
		l := &outLayer{id: shortID(cf.RootFS.DiffIDs[i].String()), desc: desc, open: sl.Compressed, stored: sl,
			want: targetCompression(desc.MediaType, isEstargz(desc), compression), same: first[desc.Digest], rep: rep}
		if l.same == nil {
			first[desc.Digest] = l
		}
		out.layers = append(out.layers, l)
	}
	return out, nil
}

// compress converts l as planned; the same input gives the same bytes, so
// a layer pushed twice is found the second time. Layers may be compressed
// in parallel.
func (o *outImage) compress(ctx context.Context, l *outLayer) error {
	if l.want == "" {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	nl, done, err := recompress(o.s, l.stored, l.desc, l.want, o.mediaType)
	o.mu.Lock()
	o.cleanups = append(o.cleanups, done)
	o.mu.Unlock()
	if err != nil {
		return err
	}
	l.desc, l.open, l.diffID = nl.desc, nl.open, nl.diffID
	return nil
}

// finish gives repeated blobs their first occurrence's descriptor and, if
// any layer was recompressed, writes the new manifest (OCI when a layer
// is zstd, which has no docker media type).
func (o *outImage) finish() error {
	changed := false
	for _, l := range o.layers {
		if l.same != nil {
			l.desc, l.open, l.diffID = l.same.desc, l.same.open, l.same.diffID
		}
		changed = changed || l.want != ""
	}
	if !changed {
		return nil
	}
	nm := o.manifest.DeepCopy()
	for i, l := range o.layers {
		nm.Layers[i] = l.desc
	}
	if err := o.newDiffIDs(nm); err != nil {
		return err
	}
	if slices.ContainsFunc(o.layers, func(l *outLayer) bool { return l.desc.MediaType == types.OCILayerZStd }) && o.mediaType != types.OCIManifestSchema1 {
		nm.MediaType = types.OCIManifestSchema1
		nm.Config.MediaType = types.OCIConfigJSON
		for i := range nm.Layers {
			if nm.Layers[i].MediaType == types.DockerLayer {
				nm.Layers[i].MediaType = types.OCILayer
			}
		}
		o.mediaType = types.OCIManifestSchema1
	}
	var err error
	o.rawManifest, err = json.Marshal(nm)
	return err
}

// newDiffIDs rewrites the config when a conversion changed layers'
// DiffIDs (eStargz), and points the manifest nm at the new config: the
// pushed image then has another id than the stored one, as with
// nerdctl's and buildkit's eStargz conversions.
func (o *outImage) newDiffIDs(nm *v1.Manifest) error {
	var cf v1.ConfigFile
	if err := json.Unmarshal(o.rawConfig, &cf); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	ids := cf.RootFS.DiffIDs
	changed := false
	for i, l := range o.layers {
		if l.diffID.Hex != "" && l.diffID != ids[i] {
			ids[i], changed = l.diffID, true
		}
	}
	if !changed {
		return nil
	}
	raw, err := rewriteDiffIDs(o.rawConfig, ids)
	if err != nil {
		return err
	}
	h, size, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	o.rawConfig = raw
	nm.Config.Digest, nm.Config.Size = h, size
	return nil
}

// cleanup removes the temporary files of the recompressed layers.
func (o *outImage) cleanup() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, c := range o.cleanups {
		c()
	}
	o.cleanups = nil
}

// targetCompression returns the compression a layer of media type mt
// must be converted to for a push asking for compression, or "" to send
// it as stored.
func targetCompression(mt types.MediaType, estargzTOC bool, compression string) string {
	have := compressionOf(mt)
	switch {
	case compression == estargzCompression && have == "gzip" && estargzTOC:
		return ""
	case compression == estargzCompression:
		return estargzCompression
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
