package tests

// Docker parity of the image listings (issue 15): images REPO[:TAG],
// --filter and --format; history and system df --format.

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestParityImages: images's REPOSITORY argument and its filters
// (dangling, label, before, since, reference with path.Match patterns),
// -q and --no-trunc with them, and --format with docker's field names.
func TestParityImages(t *testing.T) {
	e := newContainerEnv(t, requireContainers(t, false, false))
	mustSucceed(t, "tag", e.u("tag", "busybox", "busybox:x"))
	ctx := filepath.Join(e.dir, "ctx")
	os.MkdirAll(ctx, 0o755)
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox\nLABEL tier=web\nCMD [\"true\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // creation times have whole seconds
	mustSucceed(t, "build", e.u("build", "-t", "lib/web:1", ctx))
	const repoTag = "{{.Repository}}:{{.Tag}}"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"images", "--format", repoTag}, "lib/web:1\nbusybox:latest\nbusybox:x\n"},
		{[]string{"images", "--format", repoTag, "busybox"}, "busybox:latest\nbusybox:x\n"},
		{[]string{"images", "--format", repoTag, "busybox:x"}, "busybox:x\n"},
		{[]string{"images", "--format", repoTag, "busy*"}, "busybox:latest\nbusybox:x\n"},
		{[]string{"images", "--format", repoTag, "nothing"}, ""},
		{[]string{"images", "--format", repoTag, "--filter", "reference=lib/*"}, "lib/web:1\n"},
		{[]string{"images", "--format", repoTag, "--filter", "reference=*"}, "busybox:latest\nbusybox:x\n"},
		{[]string{"images", "--format", repoTag, "--filter", "reference=*:x", "--filter", "reference=*/*:1"}, "lib/web:1\nbusybox:x\n"},
		{[]string{"images", "--format", repoTag, "--filter", "label=tier"}, "lib/web:1\n"},
		{[]string{"images", "--format", repoTag, "--filter", "label=tier=db"}, ""},
		{[]string{"images", "--format", repoTag, "--filter", "dangling=true"}, ""},
		{[]string{"images", "--format", repoTag, "--filter", "dangling=false", "--filter", "since=busybox"}, "lib/web:1\n"},
		{[]string{"images", "--format", repoTag, "--filter", "before=lib/web:1"}, "busybox:latest\nbusybox:x\n"},
		{[]string{"images", "--format", "table {{.Repository}}\t{{.Tag}}", "lib/web"}, "REPOSITORY   TAG\nlib/web      1\n"},
		{[]string{"images", "--format", "{{.Repository}} {{.CreatedSince}} {{.Digest}}", "lib/web"}, "lib/web Less than a second ago <none>\n"},
	} {
		r := e.u(tc.args...)
		if tc.args[2] == "{{.Repository}} {{.CreatedSince}} {{.Digest}}" {
			// CreatedSince depends on the clock: check its shape.
			if r.code != 0 || !regexp.MustCompile(`^lib/web \S.* ago <none>\n$`).MatchString(r.stdout) {
				t.Errorf("%q: exit %d, stdout %q", tc.args, r.code, r.stdout)
			}
			continue
		}
		expect(t, strings.Join(tc.args, " "), r, 0, tc.want, "")
	}
	short := e.u("images", "-q", "busybox")
	if r := short; r.code != 0 || !regexp.MustCompile(`^[0-9a-f]{12}\n$`).MatchString(r.stdout) {
		t.Errorf("images -q busybox: exit %d, stdout %q; want one short id", r.code, r.stdout)
	}
	full := e.u("images", "-q", "--no-trunc", "busybox")
	if r := full; r.code != 0 || !regexp.MustCompile(`^sha256:[0-9a-f]{64}\n$`).MatchString(r.stdout) ||
		!strings.HasPrefix(r.stdout, "sha256:"+strings.TrimSpace(short.stdout)) {
		t.Errorf("images -q --no-trunc busybox: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := e.u("images", "--format", "json", "lib/web"); r.code != 0 || !strings.HasPrefix(r.stdout, `{"Repository":"lib/web","Tag":"1",`) {
		t.Errorf("images --format json: exit %d, stdout %q", r.code, r.stdout)
	}
	for _, args := range [][]string{
		{"images", "--filter", "bogus=1"}, {"images", "--filter", "dangling=maybe"}, {"images", "--filter", "reference=["},
		{"images", "--format", "{{.Nope"}, {"images", "a", "b"},
	} {
		if r := e.u(args...); r.code != 125 || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q; want 125", args, r.code, r.stdout)
		}
	}
	expect(t, "images --filter before=missing", e.u("images", "--filter", "before=missing"), 1, "", "missing")
}

// TestParityHistoryDFFormat: history and system df through --format.
func TestParityHistoryDFFormat(t *testing.T) {
	e := newContainerEnv(t, requireContainers(t, false, false))
	r := e.u("history", "--format", "{{.ID}}|{{.Size}}|{{.Comment}}", "busybox")
	if r.code != 0 || !regexp.MustCompile(`^[0-9a-f]{12}\|[0-9.]+[kMG]?B\|`).MatchString(r.stdout) {
		t.Errorf("history --format: exit %d, stdout %q", r.code, r.stdout)
	}
	r = e.u("history", "--format", "table {{.CreatedBy}}\t{{.CreatedSince}}", "busybox")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "CREATED BY") || !strings.Contains(r.stdout, "CREATED\n") {
		t.Errorf("history --format table: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := e.u("history", "--format", "{{.Nope"); r.code != 125 {
		t.Errorf("history --format bad template: exit %d, want 125", r.code)
	}
	mustSucceed(t, "run", e.u("run", "--name", "df1", "busybox", "true"))
	r = e.u("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Images 1 1\nContainers 1 0\n") {
		t.Errorf("system df --format: exit %d, stdout %q", r.code, r.stdout)
	}
	r = e.u("system", "df", "--format", "table {{.Type}}\t{{.Reclaimable}}")
	if r.code != 0 || !regexp.MustCompile(`^TYPE\s+RECLAIMABLE\nImages\s+\S`).MatchString(r.stdout) {
		t.Errorf("system df --format table: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := e.u("system", "df", "--format", "json"); r.code != 0 || !strings.HasPrefix(r.stdout, `{"Type":"Images","TotalCount":1,"Active":1,`) {
		t.Errorf("system df --format json: exit %d, stdout %q", r.code, r.stdout)
	}
}
