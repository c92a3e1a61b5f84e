package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/unionfuse/unionfuse/cowcache"
)

// recompressed is a layer blob compressed for a push, in a temporary file
// of the store.
type recompressed struct {
	desc v1.Descriptor
	open func() (io.ReadCloser, error)
	// diffID is set when the conversion changed the uncompressed
	// tarball (eStargz): the layer's new DiffID.
	diffID v1.Hash
}

// recompress writes layer l (desc in the stored manifest of media type
// manifestType) compressed with want ("gzip", "zstd" or "estargz") to a temporary
// file of the store. The same input gives the same bytes, so a layer
// pushed twice is found the second time. done removes the file.
func recompress(s *cowcache.Store, l v1.Layer, desc v1.Descriptor, want string, manifestType types.MediaType) (recompressed, func(), error) {
	if want == estargzCompression {
		return toEstargz(s, l, desc, manifestType)
	}
	f, done, err := s.TempFile("compress layer")
	if err != nil {
		return recompressed{}, func() {}, err
	}
	fail := func(err error) (recompressed, func(), error) {
		return recompressed{}, done, fmt.Errorf("compress layer %s: %w", shortID(desc.Digest.String()), err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return fail(err)
	}
	defer rc.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	var zw io.WriteCloser
	mt := types.OCILayerZStd
	if want == "gzip" {
		zw, err = gzip.NewWriterLevel(cw, gzip.DefaultCompression)
		mt = types.OCILayer
		if manifestType == types.DockerManifestSchema2 {
			mt = types.DockerLayer
		}
	} else {
		zw, err = zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	}
	if err != nil {
		return fail(err)
	}
	if _, err := io.Copy(zw, rc); err != nil {
		return fail(err)
	}
	if err := zw.Close(); err != nil {
		return fail(err)
	}
	hash := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	size := cw.n
	out := recompressed{
		desc: v1.Descriptor{MediaType: mt, Size: size, Digest: hash, Annotations: desc.Annotations},
		open: func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(f, 0, size)), nil },
	}
	return out, done, nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
