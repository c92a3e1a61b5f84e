package tests

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestGenerations checks that an upper directory rotated into a lower layer
// keeps working through many generations, as layered images and containers
// use them (issue 3, "Also"): the upper of one mount becomes the top lower
// layer of the next.
//
//	go test ./tests -run TestGenerations -v                                   # seed 1, 10 generations
//	go test ./tests -run TestGenerations -args -seed=7 -generations=16 -gen-ops=150
//
// Two stacks of layers start from the same base (the differential test's
// layers for the seed: its upper and its three lowers, now all read-only).
// In generation k, the kernel's overlayfs (the reference) mounts its stack
// and unionfuse (the subject) its own, each with lowers = upper_{k-1} ...
// upper_0, base (top first) and a fresh upper_k, and both get the same
// operations, compared one by one as in the differential test: a scripted
// batch below gens/ that builds on what the earlier generations wrote
// (creates, copy-ups of data, mode and xattrs, deletes that leave whiteouts,
// directories removed and recreated (opaque), a directory replaced by a
// file, renames, hard links into and out of lower layers), then random
// operations of the differential test on the rest of the tree. After each
// generation:
//
//  1. the merged trees of the two agree (and, after unmounting, the uppers
//     they wrote, byte for byte, and no lower layer was changed);
//  2. the kernel, mounting unionfuse's layers read-only with upper_k on
//     top (as the next generation will see them), shows exactly the tree
//     unionfuse showed: the uppers unionfuse writes, whiteouts and opaque
//     directories included, are the kernel's format;
//  3. unionfuse, mounting the kernel's layers the same way, shows exactly
//     the kernel's tree.
//
// Then upper_k becomes the top lower layer of generation k+1 on each side.
// Both sides rename directories that have lower content with redirects
// (redirect_dir=on), so later generations follow redirects in lower
// layers too.
func TestGenerations(t *testing.T) {
	testutil.RequireMounts(t)
	runGenerations(t, subject(t), *flagGenerations)
}

// TestGenerationsMetacopy runs the generations with metacopy=on on both
// sides (half as many): metacopy files rotate into lower layers, where
// later generations find their data further down, through redirects.
func TestGenerationsMetacopy(t *testing.T) {
	testutil.RequireMounts(t)
	if os.Getenv(subjectEnv) == "kernel" {
		t.Skip("the harness self-check runs in TestGenerations")
	}
	runGenerations(t, unionfuseMounter{metacopy: true}, max(*flagGenerations/2, 1))
}

// runGenerations runs gens generations of sub against the kernel with the
// same metacopy setting.
func runGenerations(t *testing.T, sub mounter, gens int) {
	seed, nops := genSeed(t), *flagGenOps
	t.Logf("kernel overlay vs %s: seed %d, %d generations x (scripted + %d random operations) (replay: -args -seed=%d -generations=%d -gen-ops=%d)",
		sub.name(), seed, gens, nops, seed, gens, nops)

	dir := testDir(t)
	// t.TempDir's directories are 0700: the operations run as another
	// user (op.As) could not even reach the mounts.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ref, subj := newGenStack(t, dir, "kernel"), newGenStack(t, dir, "subject")
	buildRoundLayers(t, seed, ref.base, subj.base)
	// Mtimes set since the start differ between the two sides ("now");
	// older ones (the base's, utimensat's) are compared.
	start := nowForMtimes()
	built := 0 // generations whose uppers are in the stacks
	for k := 0; k < gens; k++ {
		ok := t.Run(fmt.Sprintf("gen%02d", k), func(t *testing.T) {
			// Run alone (-run TestGenerations/gen05), a generation first
			// makes the ones before it, which -run left out: their
			// uppers are its lower layers.
			for ; built <= k; built++ {
				g := &generation{k: built, seed: seed, nops: nops, start: start, sub: sub, ref: ref, subj: subj}
				g.run(t)
				if t.Failed() {
					return
				}
				ref.rotate()
				subj.rotate()
			}
		})
		if !ok {
			t.Fatalf("generation %d failed; the later ones would build on its layers: stopped", k)
		}
	}
}

// The defaults (seed 1, 10 generations x 100 random operations) take about
// 10 s; -seed and -generations explore further.
var (
	flagGenerations = flag.Int("generations", 10, "generations: how many times an upper is rotated into the lower layers")
	flagGenOps      = flag.Int("gen-ops", 100, "generations: random operations per generation, after the scripted ones")
)

// genSeed is -seed (or UNIONFUSE_TEST_SEED), as the differential test
// reads it; 0 draws one from the clock.
func genSeed(t testing.TB) int64 {
	if seed := envInt(t, "UNIONFUSE_TEST_SEED", *flagSeed); seed != 0 {
		return seed
	}
	return time.Now().UnixNano() % 1_000_000_000
}

// genStack is one side's layers: the base, and the uppers of the
// generations so far.
type genStack struct {
	dir    string
	base   layout   // base.Upper over base.Lowers: the bottom of the stack
	uppers []string // upper_0, upper_1, ... oldest first
	cur    layout   // the generation being run
}

func newGenStack(t testing.TB, dir, side string) *genStack {
	t.Helper()
	return &genStack{dir: filepath.Join(dir, side), base: newLayout(t, filepath.Join(dir, side, "base"), 3)}
}

// lowers returns the stack, top first: upper_{k-1} ... upper_0, then the
// base layers.
func (s *genStack) lowers() []string {
	var out []string
	for i := len(s.uppers) - 1; i >= 0; i-- {
		out = append(out, s.uppers[i])
	}
	return append(append(out, s.base.Upper), s.base.Lowers...)
}

// next makes generation k's directories: a fresh upper over the stack.
func (s *genStack) next(t testing.TB, k int) layout {
	t.Helper()
	s.cur = newLayout(t, filepath.Join(s.dir, fmt.Sprintf("gen%02d", k)), 0)
	s.cur.Lowers = s.lowers()
	return s.cur
}

// rotate makes the current generation's upper the top lower layer.
func (s *genStack) rotate() { s.uppers = append(s.uppers, s.cur.Upper) }

// generation is one generation in progress on both stacks.
type generation struct {
	k, nops   int
	seed      int64
	start     time.Time
	sub       mounter
	ref, subj *genStack
	r         *diffRun
}

// stack names generation k's layers, top first, for messages.
func (g *generation) stack() string {
	names := []string{fmt.Sprintf("upper_%d (upper)", g.k)}
	for i := g.k - 1; i >= 0; i-- {
		names = append(names, fmt.Sprintf("upper_%d", i))
	}
	return strings.Join(append(names, "base upper", "base lower0", "base lower1", "base lower2"), " : ")
}

// fatal stops the generation, naming it, its layers, the command that
// replays it and its operations so far.
func (g *generation) fatal(t *testing.T, f *mismatch) {
	t.Helper()
	g.r.abort()
	var b strings.Builder
	fmt.Fprintf(&b, "generation %d of kernel overlay vs %s differs; layers: %s\n", g.k, g.sub.name(), g.stack())
	skip := ""
	if *flagSkipOps != "" {
		skip = " -skip-ops=" + *flagSkipOps
	}
	fmt.Fprintf(&b, "replay (all generations up to this one): go test ./tests -run 'TestGenerations$' -count=1 -v -args -seed=%d -generations=%d -gen-ops=%d%s\n",
		g.seed, g.k+1, g.nops, skip)
	fmt.Fprintf(&b, "generation %d's operations (=> result on the kernel; <<< on %s where it differs):\n", g.k, g.sub.name())
	for i, o := range f.ops {
		res := f.results[i]
		fmt.Fprintf(&b, "  %3d. %s  => %s", i+1, o, res[0])
		if res[1] != res[0] {
			fmt.Fprintf(&b, "   <<< %s", res[1])
		}
		b.WriteByte('\n')
	}
	t.Fatal(b.String() + f.what)
}

func (g *generation) run(t *testing.T) {
	refL, subL := g.ref.next(t, g.k), g.subj.next(t, g.k)
	r := &diffRun{t: t, start: g.start, fds: [2]fdSet{newFdSet(), newFdSet()}}
	for _, lower := range subL.Lowers {
		r.lowersBefore = append(r.lowersBefore, mustSnapshot(t, lower, snapOpts{}))
	}
	r.ref = mountUnion(t, g.kernel(), refL)
	r.sub = mountUnion(t, g.sub, subL)
	g.r = r

	g.script(t)
	if f := r.compareTrees(); f != nil {
		g.fatal(t, f)
	}
	gen := &opGen{rng: rand.New(rand.NewPCG(uint64(g.seed), uint64(1000+g.k)))}
	every := max(*flagCompareEvery, 1)
	for i := 0; i < g.nops; i++ {
		gen.scan(r.ref.Merged)
		hideFromOpGen(gen, "gens")
		if f := r.step(gen.next()); f != nil {
			g.fatal(t, f)
		}
		if (i+1)%every == 0 {
			if f := r.compareTrees(); f != nil {
				g.fatal(t, f)
			}
		}
	}

	// 1. The merged trees, then the uppers and the lowers after unmounting.
	if f := r.compareTrees(); f != nil {
		g.fatal(t, f)
	}
	refView := mustSnapshot(t, refL.Merged, snapOpts{keepXattr: mergedXattr})
	subView := mustSnapshot(t, subL.Merged, snapOpts{keepXattr: mergedXattr})
	if f := r.finish(); f != nil {
		t.Fatalf("generation %d (layers %s): %s", g.k, g.stack(), f.what)
	}

	g.checkMarks(t, subL.Upper)

	// 2 and 3. Each side's layers, upper_k on top, read by the other.
	g.crossCheck(t, readOnly(g.kernel()), subL, subView, g.sub.name())
	g.crossCheck(t, readOnly(g.sub), refL, refView, "the kernel")
}

// crossCheck mounts reader read-only over l's upper and lowers (the stack
// the next generation starts from) and compares what it shows with want,
// what writer showed through l before unmounting. The same files are
// underneath, so every mtime is compared.
func (g *generation) crossCheck(t *testing.T, reader mounter, l layout, want tree, writer string) {
	t.Helper()
	ro := layout{Lowers: append([]string{l.Upper}, l.Lowers...), Merged: filepath.Join(filepath.Dir(l.Merged), "check")}
	if err := os.MkdirAll(ro.Merged, 0o755); err != nil {
		t.Fatal(err)
	}
	u := mountUnion(t, reader, ro)
	got := mustSnapshot(t, ro.Merged, snapOpts{keepXattr: mergedXattr})
	u.mustUnmount()
	if d := diffTrees(want, got, cmpOpts{mtimeCutoff: time.Now().Add(time.Hour)}); len(d) > 0 {
		t.Errorf("generation %d: %s, mounting read-only the layers %s wrote (%s), shows another tree than %s did (want = what %s showed, got = what %s shows):\n\t%s",
			g.k, reader.name(), writer, g.stack(), writer, writer, reader.name(), strings.Join(d, "\n\t"))
	}
}

// readOnly returns the mounter of m's kind for a layout without upper:
// unionfuse mounts such a layout read-only by itself (fs.Config.Upper "").
func readOnly(m mounter) mounter {
	if k, ok := m.(kernelOverlay); ok {
		return kernelReadOnly{metacopy: k.metacopy}
	}
	return m
}

// kernel returns the reference: the kernel's overlayfs with the subject's
// metacopy setting.
func (g *generation) kernel() kernelOverlay {
	u, _ := g.sub.(unionfuseMounter)
	return kernelOverlay{metacopy: u.metacopy}
}

// kernelReadOnly mounts the kernel's overlayfs over l.Lowers alone,
// read-only, as a lower stack is seen from above.
type kernelReadOnly struct{ metacopy bool }

func (kernelReadOnly) name() string { return "kernel" }

func (k kernelReadOnly) mount(l layout) (func() error, error) {
	opts := "lowerdir=" + strings.Join(l.Lowers, ":") + kernelOptions(false)
	if k.metacopy {
		opts += ",metacopy=on"
	}
	if err := unix.Mount("overlay", l.Merged, "overlay", unix.MS_RDONLY, opts); err != nil {
		return nil, fmt.Errorf("mount -t overlay -o ro,%s %s: %w", opts, l.Merged, err)
	}
	return func() error { return unix.Unmount(l.Merged, 0) }, nil
}

// hideFromOpGen removes the paths below top from what g draws from, so
// random operations leave the scripted part of the tree alone (fresh
// names come from namePool, which does not hold top).
func hideFromOpGen(g *opGen, top string) {
	keep := func(ps []string) []string {
		var out []string
		for _, p := range ps {
			if p != top && !strings.HasPrefix(p, top+"/") {
				out = append(out, p)
			}
		}
		return out
	}
	g.paths, g.dirs = keep(g.paths), keep(g.dirs)
}

// do applies o to both unions as one step of the comparison; a scripted
// operation must succeed on the kernel (else the script is wrong).
func (g *generation) do(t *testing.T, o op) {
	t.Helper()
	if f := g.r.step(&o); f != nil {
		g.fatal(t, f)
	}
	if res := g.r.results[len(g.r.results)-1][0]; !strings.HasPrefix(res, "ok") {
		g.r.abort()
		t.Fatalf("generation %d: the script is wrong: %s => %s on the kernel", g.k, &o, res)
	}
}

// rmrf removes rel and everything below it, deepest first, as rm -r
// does, through both unions; what is there is read from the kernel's.
func (g *generation) rmrf(t *testing.T, rel string) {
	t.Helper()
	var st unix.Stat_t
	if unix.Lstat(filepath.Join(g.r.ref.Merged, rel), &st) != nil {
		return
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		g.do(t, op{Kind: "unlink", P: rel})
		return
	}
	ents, err := readDirents(filepath.Join(g.r.ref.Merged, rel))
	if err != nil {
		t.Fatalf("generation %d: ls %s on the kernel: %v", g.k, rel, err)
	}
	for _, e := range ents {
		g.rmrf(t, path.Join(rel, e.name))
	}
	g.do(t, op{Kind: "rmdir", P: rel})
}

// script changes gens/, building on what earlier generations left there,
// so that every generation copies up, whites out, replaces and links
// objects that live in the layers the earlier ones wrote.
func (g *generation) script(t *testing.T) {
	k := g.k
	gk := func(j int, rel string) string { return path.Join("gens", fmt.Sprintf("g%d", j), rel) }
	write := func(p string, mode uint32) {
		g.do(t, op{Kind: "write", P: p, Mode: mode, Size: int64(10 + 37*k), Fill: uint64(1000*k) + uint64(len(p))})
	}
	grow := func(p string) { g.do(t, op{Kind: "append", P: p, Size: int64(5 + k), Fill: uint64(k)}) }

	if k == 0 {
		g.do(t, op{Kind: "mkdir", P: "gens", Mode: 0o755})
		write("gens/log", 0o644)
	}
	// This generation's own objects, new in upper_k.
	g.do(t, op{Kind: "mkdir", P: gk(k, ""), Mode: 0o755})
	write(gk(k, "a"), 0o644)
	write(gk(k, "b"), 0o640)
	g.do(t, op{Kind: "mkdir", P: gk(k, "sub"), Mode: 0o755})
	write(gk(k, "sub/x"), 0o644)
	g.do(t, op{Kind: "symlink", P: gk(k, "sym"), Value: "a"})
	g.do(t, op{Kind: "setxattr", P: gk(k, "a"), Name: "user.gen", Value: fmt.Sprint(k)})

	if k >= 1 {
		// The previous generation's, now in the top lower layer: copy-up
		// of data, mode and xattrs; whiteouts of a file and a symlink
		// (renamed); a hard link to a lower file; a directory removed and
		// recreated (opaque).
		j := k - 1
		grow(gk(j, "a"))
		g.do(t, op{Kind: "chmod", P: gk(j, "a"), Mode: 0o600})
		g.do(t, op{Kind: "setxattr", P: gk(j, "a"), Name: "user.gen", Value: fmt.Sprintf("%d, then %d", j, k), Flags: unix.XATTR_REPLACE})
		g.do(t, op{Kind: "setxattr", P: gk(j, "b"), Name: "user.doomed", Value: "y"})
		g.do(t, op{Kind: "unlink", P: gk(j, "b")})
		g.do(t, op{Kind: "rename", P: gk(j, "sym"), Q: gk(j, "sym2")})
		g.do(t, op{Kind: "link", P: gk(j, "sub/x"), Q: gk(k, "x-of-prev")})
		g.do(t, op{Kind: "unlink", P: gk(j, "sub/x")})
		g.do(t, op{Kind: "rmdir", P: gk(j, "sub")})
		g.do(t, op{Kind: "mkdir", P: gk(j, "sub"), Mode: 0o700})
		write(gk(j, "sub/y"), 0o600)
	}
	if k >= 2 {
		// Two generations back: a directory with content in two layers
		// (upper_{k-2}, changed in upper_{k-1}) removed and recreated.
		i := k - 2
		g.rmrf(t, gk(i, ""))
		g.do(t, op{Kind: "mkdir", P: gk(i, ""), Mode: 0o750})
		write(gk(i, "again"), 0o644)
	}
	if k >= 3 {
		// Three back: that opaque directory replaced by a file.
		i := k - 3
		g.rmrf(t, gk(i, ""))
		write(gk(i, ""), 0o644)
	}
	if k >= 1 {
		// A file changed in every generation, renamed and linked back:
		// a copy-up of one name of a hard-linked lower file, then a
		// whiteout of the other.
		grow("gens/log")
		g.do(t, op{Kind: "setxattr", P: "gens/log", Name: fmt.Sprintf("user.g%d", k), Value: "set"})
		if k >= 2 {
			g.do(t, op{Kind: "removexattr", P: "gens/log", Name: fmt.Sprintf("user.g%d", k-1)})
		}
		g.do(t, op{Kind: "rename", P: "gens/log", Q: fmt.Sprintf("gens/log%d", k)})
		g.do(t, op{Kind: "link", P: fmt.Sprintf("gens/log%d", k), Q: "gens/log"})
		if k >= 2 {
			g.do(t, op{Kind: "unlink", P: fmt.Sprintf("gens/log%d", k-1)})
		}
	}
	// A directory with lower content that moves every generation, within
	// its directory or to another one (a redirect, relative or absolute),
	// while its content changes, and a directory in it that is renamed
	// every time too: later generations follow redirects in lower layers.
	wander := func(j int) string {
		switch {
		case j == 0:
			return "gens/moves/w"
		case j%2 == 1:
			return fmt.Sprintf("gens/moves/w%d", j)
		}
		return fmt.Sprintf("gens/moves/d%d/w", j)
	}
	if k == 0 {
		g.do(t, op{Kind: "mkdir", P: "gens/moves", Mode: 0o755})
		g.do(t, op{Kind: "mkdir", P: "gens/moves/w", Mode: 0o755})
		g.do(t, op{Kind: "mkdir", P: "gens/moves/w/deep0", Mode: 0o755})
		write("gens/moves/w/keep", 0o644)
		write("gens/moves/w/f0", 0o644)
		write("gens/moves/w/deep0/z", 0o644)
	} else {
		prev, next := wander(k-1), wander(k)
		if k%2 == 0 {
			g.do(t, op{Kind: "mkdir", P: path.Dir(next), Mode: 0o755})
		}
		g.do(t, op{Kind: "rename", P: prev, Q: next})
		grow(next + "/keep")
		g.do(t, op{Kind: "unlink", P: fmt.Sprintf("%s/f%d", next, k-1)})
		write(fmt.Sprintf("%s/f%d", next, k), 0o644)
		g.do(t, op{Kind: "rename", P: fmt.Sprintf("%s/deep%d", next, k-1), Q: fmt.Sprintf("%s/deep%d", next, k)})
		grow(fmt.Sprintf("%s/deep%d/z", next, k))
	}
	// Names deleted and made again every other generation: a file over
	// its whiteout, a directory over its whiteout (opaque).
	if k%2 == 0 {
		write("gens/phoenix", 0o644)
		g.do(t, op{Kind: "mkdir", P: "gens/pdir", Mode: 0o755})
		write(fmt.Sprintf("gens/pdir/f%d", k), 0o644)
	} else {
		g.do(t, op{Kind: "unlink", P: "gens/phoenix"})
		g.rmrf(t, "gens/pdir")
	}
}

// checkMarks checks that the script left in upper (which finish found equal
// to the kernel's) the marks it is there to make: whiteouts over objects of
// the layers below, and opaque directories made over whiteouts.
func (g *generation) checkMarks(t *testing.T, upper string) {
	t.Helper()
	k := g.k
	var whiteouts, opaque []string
	if k >= 1 {
		whiteouts = append(whiteouts, fmt.Sprintf("gens/g%d/b", k-1), fmt.Sprintf("gens/g%d/sym", k-1))
		opaque = append(opaque, fmt.Sprintf("gens/g%d/sub", k-1))
	}
	if k >= 2 {
		whiteouts = append(whiteouts, fmt.Sprintf("gens/log%d", k-1))
		opaque = append(opaque, fmt.Sprintf("gens/g%d", k-2))
	}
	if k%2 == 1 {
		whiteouts = append(whiteouts, "gens/phoenix", "gens/pdir")
	} else if k >= 2 {
		// Made over a whiteout of the layer below, not of its own layer;
		// with redirect_dir=on the kernel makes every new directory in a
		// merged one opaque anyway.
		opaque = append(opaque, "gens/pdir")
	}
	for _, p := range whiteouts {
		if !isWhiteout(filepath.Join(upper, p)) {
			t.Errorf("generation %d: upper_%d/%s is not a whiteout", k, k, p)
		}
	}
	for _, p := range opaque {
		if v, err := getXattr(filepath.Join(upper, p), "trusted.overlay.opaque"); err != nil || v != "y" {
			t.Errorf("generation %d: upper_%d/%s: trusted.overlay.opaque = %q, %v; want \"y\" (a directory made over a whiteout)", k, k, p, v, err)
		}
	}
}
