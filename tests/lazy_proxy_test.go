package tests

// A proxy in front of the test registry for the lazy-pull tests: it counts
// the bytes of the bodies it passes back, and can tamper with a chunk or
// cut every connection.

import (
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
)

// regProxy is a running proxy to a registry.
type regProxy struct {
	host string // 127.0.0.1:PORT
	// bytes counts the response body bytes sent to clients.
	bytes atomic.Int64
	// requests counts the requests answered.
	requests atomic.Int64
	// cut, when set, closes every connection without an answer.
	cut atomic.Bool
	// tamper, when set, changes every run of tamperFrom in the content
	// of ranged blob responses (single gzip members) into tamperTo,
	// keeping the response's length: a chunk whose data then no longer
	// has its TOC digest, with valid gzip.
	tamper atomic.Bool
}

// Bytes of the run that tampering replaces (see lazyImage's /tamper).
var (
	tamperFrom = bytes.Repeat([]byte{'A'}, 4096)
	tamperTo   = bytes.Repeat([]byte{'B'}, 4096)
)

// startProxy starts a proxy to the registry at target (host:port, plain
// HTTP), stopped when t ends.
func startProxy(t *testing.T, target string) *regProxy {
	t.Helper()
	p := &regProxy{}
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if p.tamper.Load() && resp.StatusCode == http.StatusPartialContent {
			if err := tamperBody(resp); err != nil {
				return err
			}
		}
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &p.bytes}
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.host = l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.cut.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
		}
		p.requests.Add(1)
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return p
}

// tamperBody rewrites a gzip member's content as the tamper mode says,
// padding the new member with zeros to the old length (a reader of the
// member stops at its end).
func tamperBody(resp *http.Response) error {
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	out := raw
	if zr, err := gzip.NewReader(bytes.NewReader(raw)); err == nil {
		zr.Multistream(false)
		if plain, err := io.ReadAll(zr); err == nil && bytes.Contains(plain, tamperFrom) {
			var b bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
			zw.Write(bytes.ReplaceAll(plain, tamperFrom, tamperTo))
			zw.Close()
			if b.Len() <= len(raw) {
				out = append(b.Bytes(), make([]byte, len(raw)-b.Len())...)
			}
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}

// countingBody adds the bytes read through it to n.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
