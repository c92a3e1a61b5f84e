package tests

// Integration tests of `unionfuse build`: the seed walk-through
// (examples/hello) with a busybox base image, through the CLI, with real
// containers (runner) and real mounts.

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
)

// copyDir copies the regular files of src (one level) to a new directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := e.Info()
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestBuildSeedWalkthrough(t *testing.T) {
	testutil.RequireFuse(t)
	root := busyboxStore(t)
	ctx := copyDir(t, filepath.Join("..", "examples", "hello"))
	r := storeCLI(t, root, "build", "-t", "my-base-image:1.0", "-f", filepath.Join(ctx, "Dockerfile.base"), ctx)
	mustOK(t, "build base", r)
	stepRE := regexp.MustCompile(`^Step 1/2 : FROM busybox:latest\n ---> [0-9a-f]{12}\nStep 2/2 : COPY \. /app\n ---> ([0-9a-f]{12})\n` +
		`Successfully built ([0-9a-f]{12})\nSuccessfully tagged my-base-image:1\.0\n$`)
	m := stepRE.FindStringSubmatch(r.stdout)
	if m == nil || m[1] != m[2] {
		t.Fatalf("build base output:\n%s", r.stdout)
	}
	baseID := m[1]
	r = storeCLI(t, root, "build", "-t", "my-final-image:1.0", ctx)
	mustOK(t, "build final", r)
	if !strings.Contains(r.stdout, "Step 1/2 : FROM my-base-image:1.0\n ---> "+baseID+"\nStep 2/2 : CMD /app/hello.sh\n") {
		t.Errorf("build final output:\n%s", r.stdout)
	}
	// Rebuilding: every step from the cache, the same image.
	r = storeCLI(t, root, "build", "-t", "my-base-image:1.0", "-f", filepath.Join(ctx, "Dockerfile.base"), ctx)
	mustOK(t, "rebuild base", r)
	if !strings.Contains(r.stdout, " ---> Using cache\n ---> "+baseID+"\nSuccessfully built "+baseID) {
		t.Errorf("rebuild output:\n%s", r.stdout)
	}
	r = storeCLI(t, root, "images")
	mustOK(t, "images", r)
	for _, name := range []string{`my-base-image\s+1\.0\s+` + baseID, `my-final-image\s+1\.0\s+`, `busybox\s+latest\s+`} {
		if !regexp.MustCompile(`(?m)^` + name + `.*MB$`).MatchString(r.stdout) {
			t.Errorf("images lacks %s:\n%s", name, r.stdout)
		}
	}
	base := storeCLI(t, root, "history", "my-base-image:1.0")
	final := storeCLI(t, root, "history", "my-final-image:1.0")
	mustOK(t, "history", final)
	fl := strings.Split(strings.TrimSpace(final.stdout), "\n")
	bl := strings.Split(strings.TrimSpace(base.stdout), "\n")
	if len(fl) != len(bl)+1 || historyRowsWithoutAge(fl[2:]) != historyRowsWithoutAge(bl[1:]) {
		t.Errorf("the final image's history is not the base's plus one step:\n%s\n%s", base.stdout, final.stdout)
	}
	if !regexp.MustCompile(`CMD \["/bin/sh" "-c" "/app/…\s+0B`).MatchString(fl[1]) || !strings.Contains(bl[1], "COPY dir:") {
		t.Errorf("history rows: %q, %q", fl[1], bl[1])
	}
	r = storeCLI(t, root, "run", "--rm", "my-final-image:1.0")
	mustOK(t, "run", r)
	if r.stdout != "Hello world\n" {
		t.Errorf("run printed %q", r.stdout)
	}
	// The two images' layers are stored once: busybox's and the COPY's.
	layers, _ := os.ReadDir(filepath.Join(root, "layers"))
	if len(layers) != 2 {
		t.Errorf("%d layer directories, want 2", len(layers))
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "containers")); len(ents) != 0 {
		t.Errorf("%d containers left", len(ents))
	}
}

func TestBuildRunAndFailures(t *testing.T) {
	testutil.RequireFuse(t)
	root := busyboxStore(t)
	ctx := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(ctx, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Dockerfile", `FROM busybox:latest
WORKDIR /w
RUN echo made > made && rm /bin/vi && mkdir -p /etc/x && touch /etc/x/y
RUN ["sh", "-c", "echo exec form; ls /w"]
COPY f /bin/
`)
	write("f", "f\n")
	r := storeCLI(t, root, "build", "-t", "ran:1", "--iidfile", filepath.Join(ctx, "iid"), ctx)
	mustOK(t, "build", r)
	if !strings.Contains(r.stdout, "exec form\nmade\n") {
		t.Errorf("build output:\n%s", r.stdout)
	}
	iid, _ := os.ReadFile(filepath.Join(ctx, "iid"))
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).Match(iid) || !strings.Contains(r.stdout, "Successfully built "+string(iid[7:19])) {
		t.Errorf("--iidfile wrote %q", iid)
	}
	r = storeCLI(t, root, "run", "--rm", "ran:1", "sh", "-c", "pwd; cat made /bin/f; ls /bin/vi 2>&1; ls /etc/x")
	if r.stdout != "/w\nmade\nf\nls: /bin/vi: No such file or directory\ny\n" {
		t.Errorf("run: %q (stderr %q)", r.stdout, r.stderr)
	}
	r = storeCLI(t, root, "build", "-q", ctx)
	if r.code != 0 || strings.TrimSpace(r.stdout) != string(iid) {
		t.Errorf("build -q: %q, exit %d", r.stdout, r.code)
	}
	imagesBefore := storeCLI(t, root, "images", "-q").stdout
	write("Dockerfile", "FROM busybox:latest\nRUN echo partial > /p; exit 7\n")
	r = storeCLI(t, root, "build", "-t", "bad:1", ctx)
	if r.code == 0 || !strings.Contains(r.stderr, "the command '/bin/sh -c echo partial > /p; exit 7' returned a non-zero code: 7") ||
		strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("failing RUN: exit %d, stderr %q", r.code, r.stderr)
	}
	if after := storeCLI(t, root, "images", "-q").stdout; after != imagesBefore {
		t.Errorf("a failed build changed the images:\n%s\n%s", imagesBefore, after)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "containers")); len(ents) != 0 {
		t.Errorf("%d containers left after a failed build", len(ents))
	}
	write("Dockerfile", "FROM busybox:latest\nCOPY nope /x\n")
	if r = storeCLI(t, root, "build", ctx); r.code != 1 || !strings.Contains(r.stderr, "Dockerfile:2: COPY: source nope: no such file") {
		t.Errorf("missing source: exit %d, %q", r.code, r.stderr)
	}
	// An --iidfile that cannot be written fails before the build, not
	// after "Successfully built".
	write("Dockerfile", "FROM busybox:latest\nRUN echo built\n")
	if r = storeCLI(t, root, "build", "--iidfile", "/nonexistent/iid", ctx); r.code != 1 ||
		!strings.Contains(r.stderr, "--iidfile") || strings.Contains(r.stdout, "Step") {
		t.Errorf("--iidfile in a missing directory: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// historyRowsWithoutAge joins history rows without their CREATED column
// and padding: the age ("1 second ago", "Less than a second ago") and the
// column widths that follow from it change between two calls.
func historyRowsWithoutAge(rows []string) string {
	cell := regexp.MustCompile(`\s{2,}`)
	var out []string
	for _, row := range rows {
		cells := cell.Split(row, -1)
		if len(cells) > 1 {
			cells = append(cells[:1], cells[2:]...)
		}
		out = append(out, strings.Join(cells, "|"))
	}
	return strings.Join(out, "\n")
}

// TestBuildMovesStepLayers: a RUN step's layer is moved into the store
// (issue 16) and means what the step did: new files, hard and symbolic
// links, a deleted file of the base (a whiteout), a directory replaced
// (opaque), modes; nothing is left in tmp/ or containers/. A file named
// like a whiteout is refused naming it, before anything is moved (issue
// 20), and the build leaves nothing behind.
func TestBuildMovesStepLayers(t *testing.T) {
	testutil.RequireFuse(t)
	root := busyboxStore(t)
	ctx := t.TempDir()
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`FROM busybox:latest
RUN mkdir -p /d/sub /opt && echo one > /d/one && ln /d/one /d/sub/hard && ln -s ../one /d/sub/soft && \
    chmod 0600 /d/one && rm /bin/vi && touch /opt/a /opt/b
RUN rm -rf /opt && mkdir /opt && echo new > /opt/new
`)
	mustOK(t, "build", storeCLI(t, root, "build", "-t", "moved:1", ctx))
	r := storeCLI(t, root, "run", "--rm", "moved:1", "sh", "-c",
		"stat -c '%n %a %h' /d/one /d/sub/hard; readlink /d/sub/soft; cat /d/sub/soft; ls /bin/vi 2>&1; ls /opt")
	want := "/d/one 600 2\n/d/sub/hard 600 2\n../one\none\nls: /bin/vi: No such file or directory\nnew\n"
	if r.stdout != want {
		t.Errorf("run: %q (stderr %q), want %q", r.stdout, r.stderr, want)
	}
	for _, d := range []string{"tmp", "containers"} {
		if ents, _ := os.ReadDir(filepath.Join(root, d)); len(ents) != 0 {
			t.Errorf("%s/ holds %d entries after the build", d, len(ents))
		}
	}

	imagesBefore := storeCLI(t, root, "images", "-q").stdout
	write("FROM busybox:latest\nRUN mkdir /d && touch /d/.wh.X /d/ok\n")
	r = storeCLI(t, root, "build", "-t", "wh:1", ctx)
	if r.code != 1 || !strings.Contains(r.stderr, "/d/.wh.X: a file whose name starts with \".wh.\" cannot go into a layer") ||
		strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("RUN making /d/.wh.X: exit %d, stderr %q", r.code, r.stderr)
	}
	if after := storeCLI(t, root, "images", "-q").stdout; after != imagesBefore {
		t.Errorf("a refused build changed the images:\n%s\n%s", imagesBefore, after)
	}
	for _, d := range []string{"tmp", "containers"} {
		if ents, _ := os.ReadDir(filepath.Join(root, d)); len(ents) != 0 {
			t.Errorf("%s/ holds %d entries after a refused build", d, len(ents))
		}
	}
}

// TestBuildRenamedLowerDirectory renames, in a later step, a directory an
// earlier step made: the image must hold its contents under the new name
// (with redirects, the layer held only an overlay.redirect attribute that
// packing drops, and /b came out empty). As docker's overlay2 does, the
// container's rename of such a directory fails with EXDEV and mv copies.
func TestBuildRenamedLowerDirectory(t *testing.T) {
	testutil.RequireFuse(t)
	root := busyboxStore(t)
	ctx := t.TempDir()
	dockerfile := "FROM busybox:latest\nRUN mkdir -p /a/sub && echo x > /a/x && echo y > /a/sub/y\nRUN mv /a /b\n"
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	mustOK(t, "build", storeCLI(t, root, "build", "-t", "renamed:1", ctx))
	r := storeCLI(t, root, "run", "--rm", "renamed:1", "sh", "-c", "cat /b/x /b/sub/y; ls /a 2>&1")
	if want := "x\ny\nls: /a: No such file or directory\n"; r.stdout != want {
		t.Errorf("run: %q (stderr %q), want %q", r.stdout, r.stderr, want)
	}
	// The same through a container and commit.
	mustOK(t, "run", storeCLI(t, root, "run", "--name", "mv", "renamed:1", "mv", "/b", "/c"))
	mustOK(t, "commit", storeCLI(t, root, "commit", "mv", "renamed:2"))
	mustOK(t, "rm", storeCLI(t, root, "rm", "mv"))
	r = storeCLI(t, root, "run", "--rm", "renamed:2", "cat", "/c/x", "/c/sub/y")
	if r.stdout != "x\ny\n" {
		t.Errorf("after commit: %q (stderr %q)", r.stdout, r.stderr)
	}
}
