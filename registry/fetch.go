package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/unionfuse/unionfuse/cowcache"
)

// fetcher downloads the blobs of one repository into the store's download
// area, at most jobs at a time.
type fetcher struct {
	s      *cowcache.Store
	repo   name.Repository
	puller *remote.Puller
	o      *Options
	rep    *reporter
	sem    chan struct{}
	lazy   bool // eStargz layers are pulled lazily (lazy.go)

	mu    sync.Mutex
	blobs map[v1.Hash]*fetch
}

// fetch is one blob being downloaded; done closes when dl or err is set.
type fetch struct {
	done chan struct{}
	dl   *cowcache.Download
	err  error
}

func newFetcher(s *cowcache.Store, repo name.Repository, puller *remote.Puller, o *Options, rep *reporter, jobs int) *fetcher {
	return &fetcher{s: s, repo: repo, puller: puller, o: o, rep: rep, sem: make(chan struct{}, jobs), blobs: map[v1.Hash]*fetch{}}
}

// start begins the download of desc's blob (once, however often it is
// asked for) and returns its fetch.
func (f *fetcher) start(ctx context.Context, desc v1.Descriptor) *fetch {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.blobs[desc.Digest]; ok {
		return b
	}
	b := &fetch{done: make(chan struct{})}
	f.blobs[desc.Digest] = b
	go func() {
		defer close(b.done)
		b.dl, b.err = f.download(ctx, desc)
	}()
	return b
}

// wait returns the complete download of b, or its error.
func (b *fetch) wait(ctx context.Context) (*cowcache.Download, error) {
	select {
	case <-b.done:
		return b.dl, b.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close waits for every download and releases them.
func (f *fetcher) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.blobs {
		<-b.done
		if b.dl != nil {
			b.dl.Close()
		}
	}
}

// forget removes the downloaded blobs from the download area: their
// layers are in the store.
func (f *fetcher) forget() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for h := range f.blobs {
		f.s.RemoveDownload(cowcache.Digest(h.String()))
	}
}

// download takes a slot, then fetches desc's blob into the download area
// (resuming what an interrupted pull left) and checks its digest.
func (f *fetcher) download(ctx context.Context, desc v1.Descriptor) (*cowcache.Download, error) {
	id := shortID(desc.Digest.String())
	select {
	case f.sem <- struct{}{}:
	default:
		f.rep.report(Event{ID: id, Status: Waiting})
		select {
		case f.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	defer func() { <-f.sem }()
	dl, err := f.s.StartDownload(ctx, cowcache.Digest(desc.Digest.String()))
	if err != nil {
		return nil, err
	}
	if !dl.Complete() {
		err = f.transfer(ctx, dl, desc)
		if err == nil {
			f.rep.report(Event{ID: id, Status: VerifyingChecksum})
			err = dl.Finish()
		}
		if err != nil {
			dl.Close()
			return nil, fmt.Errorf("layer %s: %w", id, err)
		}
	}
	f.rep.report(Event{ID: id, Status: DownloadComplete})
	return dl, nil
}

// transfer fetches the rest of the blob into dl: with a ranged request
// from where an earlier download stopped when the registry allows it,
// else all of it. More bytes than the manifest's size are refused.
func (f *fetcher) transfer(ctx context.Context, dl *cowcache.Download, desc v1.Descriptor) error {
	var body io.ReadCloser
	if off := dl.Offset(); off > 0 && off < desc.Size {
		body = f.ranged(ctx, desc, off)
	}
	if body == nil {
		if err := dl.Restart(); err != nil {
			return err
		}
		l, err := f.puller.Layer(ctx, f.repo.Digest(desc.Digest.String()))
		if err != nil {
			return describeError(err)
		}
		if body, err = l.Compressed(); err != nil {
			return describeError(err)
		}
	}
	defer body.Close()
	pw := &progressWriter{w: dl.Writer(), rep: f.rep, id: shortID(desc.Digest.String()), status: Downloading,
		n: dl.Offset(), total: desc.Size}
	_, err := io.Copy(pw, io.LimitReader(body, desc.Size-dl.Offset()+1))
	pw.flush()
	if dl.Offset() > desc.Size {
		dl.Restart()
		return fmt.Errorf("the registry sent more than the %d bytes the manifest gives", desc.Size)
	}
	if err != nil {
		if dl.Offset() == desc.Size {
			// All bytes came and go-containerregistry's own check refused
			// them: the content does not have the digest.
			dl.Restart()
			return fmt.Errorf("%w: the registry sent content without the manifest's digest %s", cowcache.ErrDigestMismatch, desc.Digest)
		}
		return describeError(err)
	}
	if dl.Offset() < desc.Size {
		return fmt.Errorf("the registry sent %d of %d bytes", dl.Offset(), desc.Size)
	}
	return nil
}

// ranged asks for the blob from byte off to its end (a closed range);
// nil when the registry does not answer with that part.
func (f *fetcher) ranged(ctx context.Context, desc v1.Descriptor, off int64) io.ReadCloser {
	kc := f.o.Keychain
	if kc == nil {
		kc = f.o.keychain()
	}
	auth, err := authn.Resolve(ctx, kc, f.repo)
	if err != nil {
		return nil
	}
	client, err := f.o.client(ctx, f.repo.Registry, auth, []string{f.repo.Scope(transport.PullScope)})
	if err != nil {
		return nil
	}
	u := "https://" + f.repo.RegistryStr() + "/v2/" + f.repo.RepositoryStr() + "/blobs/" + desc.Digest.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil
	}
	req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(desc.Size-1, 10))
	resp, err := client.Do(req)
	if err != nil {
		return nil
	}
	if resp.StatusCode != http.StatusPartialContent ||
		!strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(off, 10)+"-") {
		resp.Body.Close()
		return nil
	}
	return resp.Body
}

// progressWriter reports bytes as they pass, at most every 100 ms.
type progressWriter struct {
	w        io.Writer
	rep      *reporter
	id       string
	status   Status
	n, total int64
	last     time.Time
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond {
		p.last = now
		p.flush()
	}
	return n, err
}

func (p *progressWriter) flush() {
	p.rep.report(Event{ID: p.id, Status: p.status, Current: p.n, Total: p.total})
}

// progressReader is progressWriter for a reader.
type progressReader struct {
	r io.Reader
	p progressWriter
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.p.Write(b[:n])
	return n, err
}

// discard is the writer of a progressReader.
type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
