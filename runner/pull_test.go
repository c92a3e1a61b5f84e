package runner

import (
	"archive/tar"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/registry"
)

// fakePuller records what FindImage asks for and answers with img or err.
type fakePuller struct {
	img   cowcache.Image
	err   error
	calls []string
}

func (p *fakePuller) Pull(ref registry.Reference, missing bool) (cowcache.Image, error) {
	what := "pull " + ref.Familiar()
	if missing {
		what += " missing"
	}
	p.calls = append(p.calls, what)
	return p.img, p.err
}

func TestParsePullPolicy(t *testing.T) {
	for in, want := range map[string]PullPolicy{"always": PullAlways, "true": PullAlways, "missing": PullMissing,
		"false": PullMissing, "never": PullNever, "NEVER": PullNever, "newer": PullNewer} {
		if got, err := ParsePullPolicy(in); err != nil || got != want {
			t.Errorf("ParsePullPolicy(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParsePullPolicy("sometimes"); err == nil {
		t.Errorf("ParsePullPolicy(sometimes) took it")
	}
}

// TestFindImage: when FindImage pulls, by policy and by what the store
// has, and how it names what it asks for.
func TestFindImage(t *testing.T) {
	s, err := cowcache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	stored, err := s.Import(&buf, "localhost:5000/app:1", "-")
	if err != nil {
		t.Fatal(err)
	}
	byDigest := "localhost:5000/app@sha256:" + strings.Repeat("ab", 32)
	if err := s.AddRepoDigest(stored.Manifest, byDigest); err != nil {
		t.Fatal(err)
	}
	pulledErr := errors.New("registry down")
	for _, tc := range []struct {
		ref    string
		policy PullPolicy
		err    error // the puller's
		calls  string
		want   string // "stored", "pulled" or an error's text
	}{
		{"localhost:5000/app:1", PullMissing, nil, "", "stored"},
		{"localhost:5000/app:2", PullMissing, nil, "pull localhost:5000/app:2 missing", "pulled"},
		{"localhost:5000/app:2", PullNever, nil, "", "No such image: localhost:5000/app:2"},
		{"localhost:5000/app:1", PullNever, nil, "", "stored"},
		{"localhost:5000/app:1", PullAlways, nil, "pull localhost:5000/app:1", "pulled"},
		{"localhost:5000/app:1", PullAlways, pulledErr, "pull localhost:5000/app:1", "registry down"},
		{"localhost:5000/app:1", PullNewer, pulledErr, "pull localhost:5000/app:1", "stored"},
		{"localhost:5000/app:2", PullNewer, pulledErr, "pull localhost:5000/app:2 missing", "registry down"},
		{byDigest, PullMissing, nil, "", "stored"},
		{stored.ID.Short(), PullAlways, nil, "", "stored"}, // an id is never pulled
		{"busybox", PullMissing, nil, "pull busybox:latest missing", "pulled"},
		{"docker.io/library/busybox", PullMissing, nil, "pull busybox:latest missing", "pulled"},
		{"Bad/Name", PullMissing, nil, "", "No such image: Bad/Name"},
	} {
		p := &fakePuller{img: cowcache.Image{ID: "sha256:pulled"}, err: tc.err}
		img, err := FindImage(s, tc.ref, tc.policy, p)
		got := "stored"
		switch {
		case err != nil:
			got = err.Error()
		case img.ID == "sha256:pulled":
			got = "pulled"
		case img.ID != stored.ID:
			got = "another image " + string(img.ID)
		}
		calls := ""
		if len(p.calls) > 0 {
			calls = p.calls[0]
		}
		if got != tc.want || calls != tc.calls || len(p.calls) > 1 {
			t.Errorf("FindImage(%q, %v): %s after %q; want %s after %q", tc.ref, tc.policy, got, p.calls, tc.want, tc.calls)
		}
	}
	if _, err := FindImage(s, "localhost:5000/app:2", PullMissing, nil); !errors.Is(err, ErrNoSuchImage) {
		t.Errorf("FindImage without a Puller: %v, want ErrNoSuchImage", err)
	}
}
