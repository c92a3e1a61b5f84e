package mountopts

import (
	"slices"
	"strings"
	"testing"
)

// Fuzz targets of the -o parser; their corpora in testdata/fuzz/ run as
// regression tests with go test. To search for new failures:
//
//	go test -run '^$' -fuzz=FuzzParse -fuzztime=60s ./internal/mountopts
//	go test -run '^$' -fuzz=FuzzParseRoundTrip -fuzztime=60s ./internal/mountopts

// FuzzParse checks that any option string either is refused or gives a
// union Parse promises: no empty layer, an upper only with a work
// directory, each generic flag at most once, and flags FsConfig can use.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"lowerdir=a:b,upperdir=u,workdir=w,nodev",
		`lowerdir=a\:b:c\,d,ro`,
		`context="a,b",lowerdir=/l`,
		"lowerdir=l,squash_to_uid=5,uidmapping=0:1000:1,noatime,atime",
		`lowerdir=\`,
		"upperdir=u",
		",,lowerdir==:,x-systemd.automount",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := Parse(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("Parse(%q): an empty error", s)
			}
			return
		}
		if slices.Contains(o.Lowers, "") {
			t.Errorf("Parse(%q): an empty lower layer in %q", s, o.Lowers)
		}
		if (o.Upper == "") != (o.Work == "") {
			t.Errorf("Parse(%q): upper %q with work %q", s, o.Upper, o.Work)
		}
		seen := map[string]bool{}
		for _, g := range o.Generic {
			base := strings.TrimPrefix(g, "no")
			if seen[base] || !flagNames[g] {
				t.Errorf("Parse(%q): generic flags %q", s, o.Generic)
			}
			seen[base] = true
		}
		o.FsConfig()
		o.Flags()
	})
}

// escapeOption escapes a path for an option string: a backslash before
// every character the syntax gives a meaning to.
func escapeOption(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if strings.IndexByte(`\:,"`, p[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// FuzzParseRoundTrip checks that any paths, escaped, come back from Parse
// as they were.
func FuzzParseRoundTrip(f *testing.F) {
	f.Add("a", "b", "u", "w")
	f.Add(`a:b`, `c,d`, `e\f`, `"g"`)
	f.Add("x=y", "/l ow", "u\\", "w:")
	f.Fuzz(func(t *testing.T, l1, l2, u, w string) {
		if l1 == "" || l2 == "" || u == "" || w == "" {
			return
		}
		s := "lowerdir=" + escapeOption(l1) + ":" + escapeOption(l2) + ",upperdir=" + escapeOption(u) + ",workdir=" + escapeOption(w)
		o, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if !slices.Equal(o.Lowers, []string{l1, l2}) || o.Upper != u || o.Work != w {
			t.Errorf("Parse(%q): lowers %q, upper %q, work %q; want [%q %q], %q, %q", s, o.Lowers, o.Upper, o.Work, l1, l2, u, w)
		}
	})
}
