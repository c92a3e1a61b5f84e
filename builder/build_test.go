package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/internal/testutil"
)

// fakeExec is an Executor whose containers are plain directories: a
// mounted root is the (empty) upper directory itself, and Run calls run.
// It is enough for everything but what a real root filesystem needs.
type fakeExec struct {
	t      *testing.T
	run    func(args, env []string, upper string, out io.Writer) int
	live   map[string]bool // containers not removed
	n      int
	mounts int // mounted now
	// idle: the containers say their unmounted layers are idle (IdleLayer).
	idle bool
}

func (f *fakeExec) Create(ref string, p *Process) (Container, error) {
	f.n++
	id := fmt.Sprintf("%064x", f.n)
	f.live[id] = true
	return &fakeContainer{f: f, id: id, upper: f.t.TempDir(), p: p}, nil
}

type fakeContainer struct {
	f       *fakeExec
	id      string
	upper   string
	p       *Process
	mounted bool
}

func (c *fakeContainer) ID() string { return c.id }
func (c *fakeContainer) Mount() (string, error) {
	c.mounted = true
	c.f.mounts++
	return c.upper, nil
}
func (c *fakeContainer) Unmount() error {
	if c.mounted {
		c.mounted = false
		c.f.mounts--
	}
	return nil
}
func (c *fakeContainer) Run(_ context.Context, stdout, _ io.Writer) (int, error) {
	return c.f.run(c.p.Args, c.p.Env, c.upper, stdout), nil
}
func (c *fakeContainer) UpperDir() string { return c.upper }
func (c *fakeContainer) Remove() error    { delete(c.f.live, c.id); return nil }
func (c *fakeContainer) LayerIdle() error {
	if !c.f.idle || c.mounted {
		return errors.New("not idle")
	}
	return nil
}

// env is a store with a one-file base image, a context and a builder.
type env struct {
	t     *testing.T
	store *cowcache.Store
	ctx   string
	exec  *fakeExec
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s, err := cowcache.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	base := testutil.Tar(t, testutil.Spec("etc/", "etc/passwd=root\n"))
	if _, err := s.Import(bytes.NewReader(base), "base:1", "base.tar"); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: s, ctx: t.TempDir()}
	e.exec = &fakeExec{t: t, live: map[string]bool{}, run: func([]string, []string, string, io.Writer) int { return 0 }}
	return e
}

func (e *env) write(name, body string) {
	e.t.Helper()
	p := filepath.Join(e.ctx, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// build builds the context's Dockerfile and returns the output.
func (e *env) build(o Options) (cowcache.Image, string, error) {
	e.t.Helper()
	var out bytes.Buffer
	o.Context, o.Out = e.ctx, &out
	img, err := New(e.store, e.exec).Build(context.Background(), o)
	if len(e.exec.live) != 0 || e.exec.mounts != 0 {
		e.t.Errorf("build left %d containers and %d mounts", len(e.exec.live), e.exec.mounts)
	}
	return img, out.String(), err
}

func TestBuildSeed(t *testing.T) {
	e := newEnv(t)
	e.write("Dockerfile.base", "FROM base:1\nCOPY . /app\n")
	e.write("Dockerfile", "FROM my-base-image:1.0\nCMD /app/hello.sh\n")
	e.write("hello.sh", "#!/bin/sh\necho \"Hello world\"\n")
	base, out, err := e.build(Options{Dockerfile: filepath.Join(e.ctx, "Dockerfile.base"), Tags: []string{"my-base-image:1.0"}})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("Step 1/2 : FROM base:1\n ---> %s\nStep 2/2 : COPY . /app\n ---> %s\nSuccessfully built %s\nSuccessfully tagged my-base-image:1.0\n",
		mustImage(t, e.store, "base:1").ID.Short(), base.ID.Short(), base.ID.Short())
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	final, out, err := e.build(Options{Tags: []string{"my-final-image:1.0"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Step 2/2 : CMD /app/hello.sh\n ---> "+final.ID.Short()) {
		t.Errorf("output:\n%s", out)
	}
	if !reflect.DeepEqual(final.Layers, base.Layers) || !reflect.DeepEqual(final.Config.Config.Cmd, []string{"/bin/sh", "-c", "/app/hello.sh"}) {
		t.Errorf("final: layers %v (base %v), cmd %q", final.Layers, base.Layers, final.Config.Config.Cmd)
	}
	h := final.Config.History
	if got := h[len(h)-1]; !got.EmptyLayer || got.CreatedBy != `/bin/sh -c #(nop)  CMD ["/bin/sh" "-c" "/app/hello.sh"]` {
		t.Errorf("last history entry %+v", got)
	}
	if got := h[len(h)-2].CreatedBy; !strings.HasPrefix(got, "/bin/sh -c #(nop) COPY dir:") || !strings.HasSuffix(got, " in /app ") {
		t.Errorf("COPY history entry %q", got)
	}
	// The copied files are in the COPY layer.
	layer := e.store.LayerDir(base.Layers[1])
	if b, err := os.ReadFile(filepath.Join(layer, "app/hello.sh")); err != nil || !strings.Contains(string(b), "Hello world") {
		t.Errorf("app/hello.sh in the layer: %q, %v", b, err)
	}
	// Rebuilding uses the cache for every step and gives the same image.
	again, out, err := e.build(Options{Dockerfile: filepath.Join(e.ctx, "Dockerfile.base"), Tags: []string{"my-base-image:1.0"}})
	if err != nil || again.ID != base.ID || !strings.Contains(out, " ---> Using cache\n ---> "+base.ID.Short()) {
		t.Errorf("rebuild: %s (want %s), %v\n%s", again.ID.Short(), base.ID.Short(), err, out)
	}
	// Changing a source rebuilds COPY; --no-cache rebuilds too.
	e.write("hello.sh", "#!/bin/sh\necho \"Hello again\"\n")
	changed, out, err := e.build(Options{Dockerfile: filepath.Join(e.ctx, "Dockerfile.base")})
	if err != nil || changed.ID == base.ID || strings.Contains(out, "Using cache") {
		t.Errorf("after a change: %s, %v\n%s", changed.ID.Short(), err, out)
	}
	_, out, err = e.build(Options{Dockerfile: filepath.Join(e.ctx, "Dockerfile.base"), NoCache: true})
	if err != nil || strings.Contains(out, "Using cache") {
		t.Errorf("--no-cache: %v\n%s", err, out)
	}
}

func mustImage(t *testing.T, s *cowcache.Store, ref string) cowcache.Image {
	t.Helper()
	img, err := s.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestBuildArgsEnvAndMetadata(t *testing.T) {
	e := newEnv(t)
	e.write("Dockerfile", `ARG BASE=base:1
FROM ${BASE}
ARG BASE
ARG WHO=world
ENV GREETING="hello ${WHO}" DIR=/srv
LABEL org.example.who=$WHO
WORKDIR $DIR
WORKDIR sub
USER 1000:1000
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGINT
SHELL ["/bin/ash", "-c"]
ENTRYPOINT ["/bin/app"]
HEALTHCHECK --interval=5s CMD true
RUN echo $GREETING $BASE
`)
	var ran []string
	var ranEnv []string
	e.exec.run = func(args, env []string, upper string, out io.Writer) int {
		ran, ranEnv = args, env
		fmt.Fprintln(out, "ran")
		return 0
	}
	img, out, err := e.build(Options{BuildArgs: map[string]string{"WHO": "you", "UNUSED": "x"}})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	c := img.Config.Config
	if !reflect.DeepEqual(c.Env, []string{"GREETING=hello you", "DIR=/srv"}) || c.Labels["org.example.who"] != "you" ||
		c.WorkingDir != "/srv/sub" || c.User != "1000:1000" || c.StopSignal != "SIGINT" ||
		!reflect.DeepEqual(c.Shell, []string{"/bin/ash", "-c"}) || !reflect.DeepEqual(c.Entrypoint, []string{"/bin/app"}) ||
		c.Healthcheck == nil || c.Healthcheck.Interval.Seconds() != 5 {
		t.Errorf("config %+v", c)
	}
	if _, ok := c.ExposedPorts["53/udp"]; !ok || len(c.ExposedPorts) != 2 {
		t.Errorf("exposed %v", c.ExposedPorts)
	}
	if _, ok := c.Volumes["/data"]; !ok {
		t.Errorf("volumes %v", c.Volumes)
	}
	if !reflect.DeepEqual(ran, []string{"/bin/ash", "-c", "echo $GREETING $BASE"}) || !reflect.DeepEqual(ranEnv, []string{"BASE=base:1", "WHO=you"}) {
		t.Errorf("RUN ran %q with %q", ran, ranEnv)
	}
	h := img.Config.History
	if got := h[len(h)-1].CreatedBy; got != "|2 BASE=base:1 WHO=you /bin/ash -c echo $GREETING $BASE" {
		t.Errorf("RUN history %q", got)
	}
	for _, want := range []string{"Step 1/15 : FROM ${BASE}", " ---> Running in ", "ran\nRemoving intermediate container ",
		"[Warning] One or more build-args [UNUSED] were not consumed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A different build arg changes RUN's key (and ENV's), not FROM's.
	_, out, err = e.build(Options{BuildArgs: map[string]string{"WHO": "them"}})
	if err != nil || strings.Count(out, "Using cache") != 0 {
		t.Errorf("rebuild with another WHO: %v\n%s", err, out)
	}
	_, out, err = e.build(Options{BuildArgs: map[string]string{"WHO": "them"}})
	if err != nil || strings.Count(out, "Using cache") != 12 {
		t.Errorf("rebuild with the same WHO: %d cached, %v\n%s", strings.Count(out, "Using cache"), err, out)
	}
}

func TestBuildFailures(t *testing.T) {
	e := newEnv(t)
	e.write("f", "x")
	os.Symlink("/etc/passwd", filepath.Join(e.ctx, "leak"))
	os.Symlink("../..", filepath.Join(e.ctx, "up"))
	e.exec.run = func(args, _ []string, _ string, _ io.Writer) int {
		if strings.Contains(strings.Join(args, " "), "false") {
			return 3
		}
		return 0
	}
	for _, c := range []struct{ dockerfile, want string }{
		{"FROM base:1\nFOO bar\n", "Dockerfile:2: unknown instruction: FOO"},
		{"FROM base:1\nCOPY f\n", "Dockerfile:2: COPY requires at least two arguments"},
		{"COPY f /f\n", "Dockerfile:1: an instruction before the first FROM"},
		{"FROM nope:1\n", "Dockerfile:1: FROM nope:1: No such image: nope:1"},
		{"FROM base:1\nCOPY missing /x\n", "Dockerfile:2: COPY: source missing: no such file or directory in the build context"},
		{"FROM base:1\nCOPY ../f /x\n", "Dockerfile:2: COPY: source ../f: outside the build context"},
		{"FROM base:1\nCOPY leak /x\n", "Dockerfile:2: COPY: source leak: symbolic link leak -> /etc/passwd: outside the build context"},
		{"FROM base:1\nCOPY up/etc/passwd /x\n", "symbolic link up -> ../..: outside the build context"},
		{"FROM base:1\nCOPY f f /x\n", "the destination must be a directory and end with a /"},
		{"FROM base:1\nADD https://example.com/x /x\n", "no network access"},
		{"FROM base:1\nRUN true\nRUN false\n", "Dockerfile:3: the command '/bin/sh -c false' returned a non-zero code: 3"},
		{"FROM base:1\nONBUILD RUN x\n", "ONBUILD is not supported"},
		{"FROM base:1\nCOPY --chown=nobody f /x\n", `--chown=nobody: no /etc/passwd in the image`},
	} {
		e.write("Dockerfile", c.dockerfile)
		before, _ := e.store.Images()
		_, out, err := e.build(Options{Tags: []string{"bad:1"}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q\n%s", c.dockerfile, err, c.want, out)
		}
		after, _ := e.store.Images()
		if _, err := e.store.Image("bad:1"); err == nil {
			t.Errorf("%q: the failed build named an image", c.dockerfile)
		}
		if c.want[len(c.want)-1] == '3' && len(after) != len(before)+1 {
			t.Errorf("%q: %d images after, %d before: want only the step that succeeded", c.dockerfile, len(after), len(before))
		}
	}
	// The step before the failing one is cached for the next build.
	e.write("Dockerfile", "FROM base:1\nRUN true\nRUN false\n")
	_, out, _ := e.build(Options{})
	if !strings.Contains(out, "Step 2/3 : RUN true\n ---> Using cache") {
		t.Errorf("the step before the failure is not cached:\n%s", out)
	}
}

// A build whose context is cancelled during a RUN step (the command layer
// cancels it on SIGINT) ends after that step, with nothing left behind.
func TestBuildCancelled(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runs := 0
	e.exec.run = func([]string, []string, string, io.Writer) int {
		runs++
		cancel()
		return 0
	}
	e.write("Dockerfile", "FROM base:1\nRUN first\nRUN second\n")
	_, err := New(e.store, e.exec).Build(ctx, Options{Context: e.ctx, Tags: []string{"stopped:1"}})
	if !errors.Is(err, errInterrupted) {
		t.Fatalf("error %v, want %v", err, errInterrupted)
	}
	if runs != 1 {
		t.Errorf("%d RUN steps ran, want 1", runs)
	}
	if len(e.exec.live) != 0 || e.exec.mounts != 0 {
		t.Errorf("build left %d containers and %d mounts", len(e.exec.live), e.exec.mounts)
	}
	if _, err := e.store.Image("stopped:1"); err == nil {
		t.Error("the interrupted build named an image")
	}
}

// A build holds a lease on the images it uses: a prune or an rmi in
// another process while a step runs removes none of them.
func TestBuildLeasesItsImages(t *testing.T) {
	e := newEnv(t)
	other, err := cowcache.Open(e.store.Root())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	e.write("Dockerfile", "FROM base:1\nRUN one\nRUN two\n")
	var rmiErr error
	e.exec.run = func(args, _ []string, upper string, _ io.Writer) int {
		os.WriteFile(filepath.Join(upper, args[len(args)-1]), nil, 0o644)
		if args[len(args)-1] == "two" {
			if _, err := other.Prune(); err != nil {
				t.Errorf("prune: %v", err)
			}
			_, rmiErr = other.RemoveImage("base:1", true)
		}
		return 0
	}
	img, _, err := e.build(Options{NoCache: true})
	if err != nil {
		t.Fatalf("build with a prune during its last step: %v", err)
	}
	if rmiErr == nil || !strings.Contains(rmiErr.Error(), "used by a running build") {
		t.Errorf("rmi -f of the base during the build: %v", rmiErr)
	}
	if _, err := other.Prune(); err != nil {
		t.Fatal(err)
	}
	// Once the build has ended its dangling images go.
	if _, err := e.store.Image(img.ID.String()); err == nil {
		t.Error("the build's untagged image outlived its lease in a prune")
	}
}

// TestBuildMovesIdleLayers: a step's layer is moved into the store when
// its container says nothing uses it (the upper directory is gone after
// the build), and copied otherwise (it stays); the image is the same.
func TestBuildMovesIdleLayers(t *testing.T) {
	for _, idle := range []bool{true, false} {
		t.Run(fmt.Sprint("idle=", idle), func(t *testing.T) {
			e := newEnv(t)
			e.exec.idle = idle
			var uppers []string
			e.exec.run = func(_, _ []string, upper string, _ io.Writer) int {
				uppers = append(uppers, upper)
				if err := os.WriteFile(filepath.Join(upper, "made"), []byte("made\n"), 0o644); err != nil {
					t.Error(err)
				}
				return 0
			}
			e.write("Dockerfile", "FROM base:1\nRUN make\nWORKDIR /w\n")
			img, _, err := e.build(Options{NoCache: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(img.Layers) != 3 {
				t.Fatalf("layers %v, want the base's, RUN's and WORKDIR's", img.Layers)
			}
			if b, err := os.ReadFile(filepath.Join(e.store.LayerDir(img.Layers[1]), "made")); err != nil || string(b) != "made\n" {
				t.Errorf("RUN's layer: %q, %v", b, err)
			}
			if _, err := os.Stat(filepath.Join(e.store.LayerDir(img.Layers[2]), "w")); err != nil {
				t.Errorf("WORKDIR's layer: %v", err)
			}
			_, err = os.Stat(uppers[0])
			if moved := errors.Is(err, os.ErrNotExist); moved != idle {
				t.Errorf("idle %v: RUN's upper moved %v (%v)", idle, moved, err)
			}
		})
	}
}
