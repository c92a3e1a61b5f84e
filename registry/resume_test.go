package registry

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// flaky wraps a registry: the first GET of blob d sends half of it and
// drops the connection; every GET of a blob is counted, and the Range of
// each request for d is kept.
type flaky struct {
	d      string
	mu     sync.Mutex
	broken bool
	gets   map[string]int
	ranges []string
}

func (f *flaky) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := strings.LastIndex(r.URL.Path, "/blobs/")
		if r.Method != http.MethodGet || i < 0 {
			h.ServeHTTP(w, r)
			return
		}
		blob := r.URL.Path[i+len("/blobs/"):]
		f.mu.Lock()
		f.gets[blob]++
		breakNow := blob == f.d && !f.broken
		if blob == f.d {
			f.ranges = append(f.ranges, r.Header.Get("Range"))
			f.broken = true
		}
		f.mu.Unlock()
		if !breakNow {
			h.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(&halfWriter{ResponseWriter: w}, r)
		panic(http.ErrAbortHandler)
	})
}

// halfWriter passes on the first half of a body whose length is known.
type halfWriter struct {
	http.ResponseWriter
	limit, n int
}

func (h *halfWriter) WriteHeader(code int) {
	h.limit, _ = strconv.Atoi(h.Header().Get("Content-Length"))
	h.limit /= 2
	h.ResponseWriter.WriteHeader(code)
}

func (h *halfWriter) Write(p []byte) (int, error) {
	if h.n+len(p) > h.limit {
		p = p[:h.limit-h.n]
	}
	n, err := h.ResponseWriter.Write(p)
	h.n += n
	h.ResponseWriter.(http.Flusher).Flush()
	return n, err
}

// TestPullResumes: a pull whose second layer breaks off stores nothing;
// the next pull fetches neither the first layer again nor the part of
// the second that came, and succeeds.
func TestPullResumes(t *testing.T) {
	img := testImage(t, 2, HostPlatform().Architecture)
	ls, _ := img.Layers()
	first, _ := ls[0].Digest()
	second, _ := ls[1].Digest()
	size, _ := ls[1].Size()
	f := &flaky{d: second.String(), gets: map[string]int{}}
	host := testRegistry(t, f.wrap)
	writeImage(t, host+"/app:1", img)
	f.gets = map[string]int{}
	s := testStore(t)
	if _, err := Pull(context.Background(), s, mustParse(t, host+"/app:1"), PullOptions{}); err == nil {
		t.Fatal("pull through a connection that breaks: no error")
	}
	checkEmpty(t, s)
	partial, err := os.Stat(filepath.Join(s.Root(), "downloads", second.Hex+".partial"))
	if err != nil || partial.Size() != size/2 {
		t.Fatalf("partial download: %v, size %v of %d", err, partial, size)
	}
	res, err := Pull(context.Background(), s, mustParse(t, host+"/app:1"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Image.Layers) != 2 {
		t.Errorf("image has %d layers", len(res.Image.Layers))
	}
	if n := f.gets[first.String()]; n != 1 {
		t.Errorf("first layer fetched %d times, want 1", n)
	}
	want := "bytes=" + strconv.FormatInt(size/2, 10) + "-" + strconv.FormatInt(size-1, 10)
	if len(f.ranges) != 2 || f.ranges[1] != want {
		t.Errorf("requests for the broken layer had ranges %q, want a second with %q", f.ranges, want)
	}
}

// TestPullCanceled: a pull canceled mid-download stores nothing.
func TestPullCanceled(t *testing.T) {
	img := testImage(t, 1, HostPlatform().Architecture)
	ls, _ := img.Layers()
	d, _ := ls[0].Digest()
	ctx, cancel := context.WithCancel(context.Background())
	host := testRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, d.String()) {
				cancel()
				<-r.Context().Done()
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	writeImage(t, host+"/app:1", img)
	s := testStore(t)
	_, err := Pull(ctx, s, mustParse(t, host+"/app:1"), PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("canceled pull: %v", err)
	}
	checkEmpty(t, s)
}
