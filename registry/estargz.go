package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/unionfuse/unionfuse/cowcache"
)

// eStargz (github.com/containerd/stargz-snapshotter/estargz) is a gzip
// layer that is also seekable: every file, and every chunk of a large
// file, is a gzip member of its own, and the blob ends with a table of
// contents (TOC, stargz.index.json) giving each entry's metadata, its
// offset in the blob and the digest of each chunk, then a footer pointing
// at the TOC. Any gzip reader unpacks it as a normal layer (with two more
// files: stargz.index.json and a prefetch landmark); a reader that knows
// the format reads the footer and TOC by range requests and then only the
// chunks it needs (lazy.go). The manifest's layer descriptor carries the
// TOC's digest (TOCJSONDigestAnnotation), so a TOC fetched alone is
// verified against the manifest, whose digest the pull checks.

// estargzCompression is the --compression name of eStargz layers.
const estargzCompression = "estargz"

// isEstargz reports whether a layer descriptor names an eStargz blob.
func isEstargz(desc v1.Descriptor) bool {
	_, ok := desc.Annotations[estargz.TOCJSONDigestAnnotation]
	return ok && compressionOf(desc.MediaType) == "gzip"
}

// toEstargz writes layer l as an eStargz blob to a temporary file of the
// store. Unlike gzip or zstd, eStargz changes the uncompressed tarball
// (entries reordered, the TOC and a landmark added), so the result has a
// new DiffID, which the pushed config must name (rewriteDiffIDs).
func toEstargz(s *cowcache.Store, l v1.Layer, desc v1.Descriptor, manifestType types.MediaType) (recompressed, func(), error) {
	f, done, err := s.TempFile("estargz layer")
	if err != nil {
		return recompressed{}, func() {}, err
	}
	fail := func(err error) (recompressed, func(), error) {
		return recompressed{}, done, fmt.Errorf("convert layer %s to eStargz: %w", shortID(desc.Digest.String()), err)
	}
	// Build needs the tarball seekable: it goes to a second temporary
	// file first.
	tf, tdone, err := s.TempFile("estargz input")
	if err != nil {
		return fail(err)
	}
	defer tdone()
	rc, err := l.Uncompressed()
	if err != nil {
		return fail(err)
	}
	n, err := io.Copy(tf, rc)
	rc.Close()
	if err != nil {
		return fail(err)
	}
	blob, err := estargz.Build(io.NewSectionReader(tf, 0, n), estargz.WithCompressionLevel(6))
	if err != nil {
		return fail(err)
	}
	defer blob.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	if _, err := io.Copy(cw, blob); err != nil {
		return fail(err)
	}
	if err := blob.Close(); err != nil {
		return fail(err)
	}
	usize, err := blob.UncompressedSize()
	if err != nil {
		return fail(err)
	}
	mt := types.OCILayer
	if manifestType == types.DockerManifestSchema2 {
		mt = types.DockerLayer
	}
	ann := map[string]string{}
	for k, v := range desc.Annotations {
		ann[k] = v
	}
	ann[estargz.TOCJSONDigestAnnotation] = blob.TOCDigest().String()
	ann[estargz.StoreUncompressedSizeAnnotation] = strconv.FormatInt(usize, 10)
	size := cw.n
	diffID, err := v1.NewHash(blob.DiffID().String())
	if err != nil {
		return fail(err)
	}
	out := recompressed{
		desc:   v1.Descriptor{MediaType: mt, Size: size, Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, Annotations: ann},
		open:   func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(f, 0, size)), nil },
		diffID: diffID,
	}
	return out, done, nil
}

// rewriteDiffIDs returns the config raw with rootfs.diff_ids replaced by
// ids, every other field kept as it was.
func rewriteDiffIDs(raw []byte, ids []v1.Hash) ([]byte, error) {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var rootfs map[string]json.RawMessage
	if err := json.Unmarshal(cfg["rootfs"], &rootfs); err != nil {
		return nil, fmt.Errorf("config rootfs: %w", err)
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	rootfs["diff_ids"] = b
	if cfg["rootfs"], err = json.Marshal(rootfs); err != nil {
		return nil, err
	}
	return json.Marshal(cfg)
}
