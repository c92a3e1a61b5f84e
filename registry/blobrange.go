package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// blobRange reads parts of one registry blob by HTTP range requests: an
// io.ReaderAt over the blob, for eStargz footers, TOCs and chunks.
type blobRange struct {
	client *http.Client
	url    string
	size   int64
}

// newBlobRange connects to the blob digest (of size bytes) of repo with
// o's credentials and transport rules (those of pull).
func newBlobRange(ctx context.Context, o *Options, repo name.Repository, digest string, size int64) (*blobRange, error) {
	kc := o.Keychain
	if kc == nil {
		kc = o.keychain()
	}
	auth, err := authn.Resolve(ctx, kc, repo)
	if err != nil {
		return nil, err
	}
	client, err := o.client(ctx, repo.Registry, auth, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, describeError(err)
	}
	u := "https://" + repo.RegistryStr() + "/v2/" + repo.RepositoryStr() + "/blobs/" + digest
	return &blobRange{client: client, url: u, size: size}, nil
}

// ReadAt reads len(p) bytes at off: one request for exactly that range,
// which must come back as such (206 with the same Content-Range).
func (b *blobRange) ReadAt(p []byte, off int64) (int, error) {
	return b.readAt(context.Background(), p, off)
}

func (b *blobRange) readAt(ctx context.Context, p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	body, err := b.open(ctx, off, off+int64(len(p)))
	if err != nil {
		return 0, err
	}
	defer body.Close()
	n, err := io.ReadFull(body, p)
	if err != nil {
		return n, fmt.Errorf("range request: %w", err)
	}
	return n, nil
}

// open requests bytes [off, end) of the blob and returns the response's
// body, which gives those bytes and no more.
func (b *blobRange) open(ctx context.Context, off, end int64) (io.ReadCloser, error) {
	if off < 0 || end <= off || end > b.size {
		return nil, fmt.Errorf("range %d..%d outside the blob's %d bytes", off, end, b.size)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url, nil)
	if err != nil {
		return nil, err
	}
	last := end - 1
	req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(last, 10))
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, describeError(err)
	}
	if resp.StatusCode != http.StatusPartialContent {
		resp.Body.Close()
		return nil, fmt.Errorf("range request: the registry answered %s", resp.Status)
	}
	want := "bytes " + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(last, 10) + "/"
	if !strings.HasPrefix(resp.Header.Get("Content-Range"), want) {
		resp.Body.Close()
		return nil, fmt.Errorf("range request: the registry sent range %q", resp.Header.Get("Content-Range"))
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, end-off), resp.Body}, nil
}
