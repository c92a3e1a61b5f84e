package tests

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// The differential test applies the same random operations to the kernel's
// overlayfs (the reference) and to unionfuse (the subject), each on its own
// copy of identical layers, and compares every result.
//
//	go test ./tests -run TestDifferential -v                      # 20 rounds x 200 ops, seeds 1..20
//	go test ./tests -run TestDifferential -args -seed=0 -rounds=200 -ops=500   # explore: seeds from the clock
//	go test ./tests -run TestDifferential -args -seed=1234 -rounds=1   # replay one round
//
// Round i uses seed+i for both its layers and its operations, and a failure
// prints the command that replays exactly that round. `make test` runs the
// fixed seeds, so that its result does not depend on the day; exploring
// with -seed=0 finds new cases, which become fixed regressions. The same knobs are
// read from UNIONFUSE_TEST_SEED, UNIONFUSE_TEST_ROUNDS and UNIONFUSE_TEST_OPS.
var (
	flagSeed         = flag.Int64("seed", 1, "differential: seed of the first round (0: from the clock)")
	flagRounds       = flag.Int("rounds", 20, "differential: rounds, each on fresh layers")
	flagOps          = flag.Int("ops", 200, "differential: operations per round")
	flagCompareEvery = flag.Int("compare-every", 5, "differential: compare the whole merged trees every N operations")
	flagCheckDino    = flag.Bool("check-dino", true, "differential: require d_ino == st_ino in the subject's listings (false: look past a known defect)")
	flagCheckNlink   = flag.Bool("check-nlink", true, "differential: compare the link counts of non-directories (false: look past a known defect)")
	flagSkipOps      = flag.String("skip-ops", "", "differential: comma-separated operation kinds not to draw (look past a known defect), e.g. fdchmod,fdsetxattr")
	flagShrink       = flag.Duration("shrink", 20*time.Second, "differential: time spent minimizing the first failing round's operations")
)

// envInt returns the integer in env var name, or def.
func envInt(t testing.TB, name string, def int64) int64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return v
}

func TestDifferential(t *testing.T) {
	testutil.RequireMounts(t)
	rounds := int(envInt(t, "UNIONFUSE_TEST_ROUNDS", int64(*flagRounds)))
	runDifferential(t, subject(t), rounds)
}

// TestDifferentialPassthrough runs the comparison with FUSE passthrough on,
// as root mounts run by default. Its one documented difference, reads
// through a descriptor opened on a lower file before that file's copy-up,
// is left out (fdread); everything else must still agree with the kernel.
func TestDifferentialPassthrough(t *testing.T) {
	testutil.RequireMounts(t)
	if os.Getenv(subjectEnv) == "kernel" {
		t.Skip("the harness self-check runs in TestDifferential")
	}
	saved := *flagSkipOps
	*flagSkipOps = strings.Trim(saved+",fdread", ",")
	defer func() { *flagSkipOps = saved }()
	rounds := int(envInt(t, "UNIONFUSE_TEST_ROUNDS", int64(*flagRounds)))
	runDifferential(t, unionfuseMounter{passthrough: true}, max(rounds/2, 1))
}

// TestDifferentialWriteThrough runs the comparison with the kernel's
// writeback cache off (-o writeback=off), as a mount with index=on has
// it; TestDifferential has it on, the default without passthrough.
func TestDifferentialWriteThrough(t *testing.T) {
	runDifferentialVariant(t, unionfuseMounter{writeOff: true})
}

// TestDifferentialIndex runs the comparison with index=on on both sides:
// hard links between lower files survive copy-up (the layers hold several,
// among them a fifo's), and overlay.nlink is compared in the uppers.
func TestDifferentialIndex(t *testing.T) {
	runDifferentialVariant(t, unionfuseMounter{index: true})
}

// TestDifferentialMetacopy runs the comparison with metacopy=on on both
// sides (and redirect_dir=on): a change of metadata copies up no data, and
// the uppers are compared with their overlay.metacopy and
// overlay.redirect attributes.
func TestDifferentialMetacopy(t *testing.T) {
	runDifferentialVariant(t, unionfuseMounter{metacopy: true})
}

// TestDifferentialPrune runs the comparison with a bound of 8 nodes
// (-o max_nodes=8), plain and with index=on: the kernel is made to forget
// almost every inode it is not using after each few operations, so every
// name is looked up afresh again and again (copied-up, renamed, hard-linked
// and opened objects among them), as its own memory pressure could do at
// any time.
func TestDifferentialPrune(t *testing.T) {
	t.Run("plain", func(t *testing.T) { runDifferentialVariant(t, unionfuseMounter{maxNodes: 8}) })
	t.Run("index", func(t *testing.T) { runDifferentialVariant(t, unionfuseMounter{maxNodes: 8, index: true}) })
}

// runDifferentialVariant runs half the rounds with unionfuse mounted as m,
// against the kernel with the same options.
func runDifferentialVariant(t *testing.T, m unionfuseMounter) {
	testutil.RequireMounts(t)
	if os.Getenv(subjectEnv) == "kernel" {
		t.Skip("the harness self-check runs in TestDifferential")
	}
	rounds := int(envInt(t, "UNIONFUSE_TEST_ROUNDS", int64(*flagRounds)))
	runDifferential(t, m, max(rounds/2, 1))
}

// runDifferential runs rounds of random operations on the kernel's overlay
// and on sub, and fails on the first difference of each round.
func runDifferential(t *testing.T, sub mounter, rounds int) {
	seed := envInt(t, "UNIONFUSE_TEST_SEED", *flagSeed)
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000_000
	}
	nops := int(envInt(t, "UNIONFUSE_TEST_OPS", int64(*flagOps)))
	t.Logf("kernel overlay vs %s: seed %d, %d rounds x %d operations (replay: -args -seed=%d -rounds=%d -ops=%d)",
		sub.name(), seed, rounds, nops, seed, rounds, nops)

	var total, compared int
	shrinkLeft := *flagShrink
	for i := 0; i < rounds; i++ {
		rs := seed + int64(i)
		t.Run(fmt.Sprintf("round%02d-seed%d", i, rs), func(t *testing.T) {
			ops, trees, fail := differentialRound(t, sub, rs, nops)
			total += ops
			compared += trees
			if fail == nil {
				return
			}
			msg := fail.report(sub.name(), rs, nops)
			if shrinkLeft > 0 {
				start := time.Now()
				if small := shrink(t, sub, rs, fail.ops, shrinkLeft); small != nil {
					msg += "\n\nminimized (replayed on fresh copies of the same layers):\n" + small.report(sub.name(), rs, nops) +
						"\n" + layerFacts(t, rs, small.ops)
				}
				shrinkLeft = 0 // once: later failures are reported as they are
				t.Logf("minimizing took %v", time.Since(start).Round(time.Millisecond))
			}
			t.Fatal(msg)
		})
	}
	t.Logf("%d rounds, %d operations compared (errno and touched paths after each), %d whole-tree comparisons, plus upper and lower directories after each round",
		rounds, total, compared)
}

// ---- Layers ----

// diffLayers returns the items of the lowers (top first) and of the upper
// for one round: a fixed base with shadowing, whiteouts, opaque dirs, links,
// a fifo, xattrs and odd owners and modes, plus a few random items per layer
// (none when rng is nil).
func diffLayers(rng *rand.Rand) (lowers [][]testutil.Item, upper []testutil.Item) {
	bottom := []testutil.Item{
		{Path: "d1/a", Kind: 'f', Data: "a from the bottom\n"},
		{Path: "d1/b", Kind: 'f', Data: "b from the bottom\n"},
		{Path: "d1/sub/c", Kind: 'f', Data: "c from the bottom\n"},
		{Path: "d1/sub/deep/x", Kind: 'f', Data: "x\n"},
		{Path: "d2/e", Kind: 'f', Data: "e\n"},
		{Path: "d2/f", Kind: 'f', Data: "f\n"},
		{Path: "gone/g", Kind: 'f', Data: "g\n"},
		{Path: "opq/old1", Kind: 'f', Data: "old1\n"},
		{Path: "opq/old2", Kind: 'd'},
		{Path: "opq2/o", Kind: 'f', Data: "o\n"},
		{Path: "shadow", Kind: 'f', Data: "shadow from the bottom\n"},
		{Path: "hl1", Kind: 'f', Data: "hard linked\n"},
		{Path: "hl2", Kind: 'h', Data: "hl1"},
		{Path: "d2/hl3", Kind: 'h', Data: "hl1"},
		{Path: "sym", Kind: 'l', Data: "d1/a"},
		{Path: "dangling", Kind: 'l', Data: "nowhere"},
		{Path: "loop", Kind: 'l', Data: "loop"},
		{Path: "fifo1", Kind: 'p'},
		{Path: "fifo2", Kind: 'h', Data: "fifo1"},
		{Path: "xf", Kind: 'f', Data: "with xattrs\n", Xattrs: map[string]string{"user.color": "red", "user.empty": ""}},
		{Path: "own", Kind: 'f', Data: "owned\n", UID: 1000, GID: 1000, Mode: 0o640},
		{Path: "priv", Kind: 'd', Mode: 0o700, UID: 1000, GID: 1000},
		{Path: "priv/secret", Kind: 'f', Data: "s\n", Mode: 0o600, UID: 1000, GID: 1000},
		{Path: "suid", Kind: 'f', Data: "#!/bin/sh\n", Mode: 0o4755},
		{Path: "sticky", Kind: 'd', Mode: 0o1777},
		{Path: "typechg/t1", Kind: 'f', Data: "t1\n"},
		{Path: "ftodir", Kind: 'f', Data: "a file at the bottom\n"},
		{Path: "sparse", Kind: 'f', Data: "tail\n", Sparse: 1 << 20},
		{Path: "big", Kind: 'f', Data: strings.Repeat("0123456789abcdef", 8<<10)},
		{Path: "xwh/xa", Kind: 'f', Data: "xa\n"},
		{Path: "xwh/xb", Kind: 'f', Data: "xb\n"},
	}
	middle := []testutil.Item{
		{Path: "shadow", Kind: 'f', Data: "shadow from the middle\n"},
		{Path: "d1/a", Kind: 'f', Data: "a from the middle\n"},
		{Path: "d1/newmid", Kind: 'f', Data: "m\n"},
		{Path: "gone", Kind: 'w'},
		{Path: "opq", Kind: 'd', Xattrs: map[string]string{"trusted.overlay.opaque": "y"}},
		{Path: "opq/new1", Kind: 'f', Data: "new1\n"},
		{Path: "d2/f", Kind: 'w'},
		{Path: "d3/h", Kind: 'f', Data: "h\n"},
		{Path: "typechg", Kind: 'f', Data: "now a file\n"},
		{Path: "ftodir/inner", Kind: 'f', Data: "i\n"},
		// xattr whiteouts (kind 'x') are not drawn here: the kernel's rmdir
		// counts them as entries (ENOTEMPTY for a directory that lists
		// empty), see TestXattrWhiteouts.
		{Path: "xwh/xa", Kind: 'w'},
		{Path: "xwh/xc", Kind: 'f', Data: "xc\n"},
	}
	top := []testutil.Item{
		{Path: "shadow", Kind: 'f', Data: "shadow from the top\n"},
		{Path: "d1/sub/c", Kind: 'f', Data: "c from the top\n"},
		{Path: "xf2", Kind: 'f', Data: "x2\n", Xattrs: map[string]string{"user.k": "v"}},
		{Path: "sym2", Kind: 'l', Data: "d2/e"},
		{Path: "d3", Kind: 'd', Xattrs: map[string]string{"trusted.overlay.opaque": "y"}},
		{Path: "d3/i", Kind: 'f', Data: "i\n"},
		{Path: "d5", Kind: 'd', Mode: 0o750},
	}
	upper = []testutil.Item{
		{Path: "shadow", Kind: 'f', Data: "shadow from the upper\n"},
		{Path: "up1", Kind: 'f', Data: "up1\n"},
		{Path: "updir/k", Kind: 'f', Data: "k\n"},
		{Path: "d1/u", Kind: 'f', Data: "u\n"},
		{Path: "d2/e", Kind: 'w'},
		{Path: "opq2", Kind: 'd', Xattrs: map[string]string{"trusted.overlay.opaque": "y"}},
		{Path: "opq2/p", Kind: 'f', Data: "p\n"},
	}
	layers := [][]testutil.Item{top, middle, bottom, upper}
	dirs := []string{"", "d1", "d2", "d3", "d1/sub", "rdir", "opq"}
	for i := range layers {
		if rng == nil {
			break
		}
		for n := 3 + rng.IntN(4); n > 0; n-- {
			p := path.Join(dirs[rng.IntN(len(dirs))], pick(rng, randNames))
			it := testutil.Item{Path: p, Optional: true}
			switch r := rng.IntN(10); {
			case r < 4:
				it.Kind, it.Data = 'f', fmt.Sprintf("random %s in layer %d\n", p, i)
			case r < 6:
				it.Kind = 'd'
				if rng.IntN(3) == 0 {
					it.Xattrs = map[string]string{"trusted.overlay.opaque": "y"}
				}
			case r < 7:
				it.Kind, it.Data = 'l', pick(rng, randNames)
			case r < 9:
				it.Kind = 'w'
			default:
				it.Kind = 'p'
			}
			layers[i] = append(layers[i], it)
		}
	}
	return layers[:3], layers[3]
}

var randNames = []string{"r0", "r1", "r2", "a", "e", "h", "sub"}

// namePool holds the names new objects get: names used in the layers
// (several hidden by whiteouts or opaque directories) and fresh ones.
var namePool = []string{
	"n0", "n1", "n2", "n3", "n4", "a", "b", "c", "e", "f", "g", "h", "i",
	"gone", "old1", "old2", "new1", "o", "p", "k", "u", "x", "xa", "xb", "xc",
	"sub", "deep", "shadow", "hl1", "r0", "r1", "r2", "typechg", "t1", "inner", "ftodir",
}

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

// ---- Running a round ----

// diffRun is one round in progress: the same layers built twice, the
// kernel overlay mounted on one copy (ref) and the subject on the other.
type diffRun struct {
	t            testing.TB
	ref, sub     *union
	lowersBefore []tree // the subject's lowers before mounting
	start        time.Time
	fds          [2]fdSet // descriptors held open: ref, sub
	ops          []*op
	results      [][2]string // ref, sub
	trees        int         // whole-tree comparisons made
}

// newDiffRun builds the round's layers twice from seed and mounts them.
func newDiffRun(t testing.TB, m mounter, seed int64) *diffRun {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir's directories are 0700: without this, every operation run
	// as another user (op.As) would fail with EACCES before it reached
	// either mount, and permission semantics would go untested.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ref := newLayout(t, filepath.Join(dir, "kernel"), 3)
	sub := newLayout(t, filepath.Join(dir, "subject"), 3)
	buildRoundLayers(t, seed, ref, sub)
	r := &diffRun{t: t, start: nowForMtimes(), fds: [2]fdSet{newFdSet(), newFdSet()}}
	for _, lower := range sub.Lowers {
		r.lowersBefore = append(r.lowersBefore, mustSnapshot(t, lower, snapOpts{}))
	}
	// The kernel runs with the subject's redirect_dir.
	u, _ := m.(unionfuseMounter)
	r.ref = mountUnion(t, kernelOverlay{redirectOff: u.redirectOff, index: u.index, metacopy: u.metacopy}, ref)
	r.sub = mountUnion(t, m, sub)
	return r
}

// baseLayersOnly, as a round's seed, builds diffLayers without random items.
const baseLayersOnly = -1

// buildRoundLayers builds the layers of diffLayers(seed) into each layout,
// identically, then removes from all of them the whiteouts the kernel would
// list in readdir yet not find on lookup: a whiteout in the lowest layer of
// a merged directory, or in a directory of a single layer, hides nothing,
// and the kernel (6.x) lists such a name while lstat says ENOENT, which
// unionfuse does not copy. Such whiteouts are meaningless; leaving them out
// keeps that kernel quirk out of the comparison.
func buildRoundLayers(t testing.TB, seed int64, ls ...layout) {
	t.Helper()
	for _, l := range ls {
		var rng *rand.Rand
		if seed != baseLayersOnly {
			rng = rand.New(rand.NewPCG(uint64(seed), 1))
		}
		lowers, upper := diffLayers(rng)
		for j, items := range lowers {
			testutil.BuildDir(t, l.Lowers[j], items)
		}
		testutil.BuildDir(t, l.Upper, upper)
	}
	dead := deadWhiteouts(t, ls[0])
	if len(dead) == 0 {
		return
	}
	for _, l := range ls {
		for _, layer := range append([]string{l.Upper}, l.Lowers...) {
			for _, p := range dead {
				if isWhiteout(filepath.Join(layer, p)) {
					if err := os.Remove(filepath.Join(layer, p)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := testutil.SetTimesBelow(layer, testutil.FixedTime); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// deadWhiteouts mounts l's layers read-only with the kernel (the upper as
// the top lower) and returns the paths that readdir lists but lstat cannot
// find.
func deadWhiteouts(t testing.TB, l layout) []string {
	t.Helper()
	ro := layout{Lowers: append([]string{l.Upper}, l.Lowers...), Merged: t.TempDir()}
	opts := "lowerdir=" + strings.Join(ro.Lowers, ":")
	if err := unix.Mount("overlay", ro.Merged, "overlay", unix.MS_RDONLY, opts); err != nil {
		t.Fatalf("mount -t overlay -o %s: %v", opts, err)
	}
	defer func() {
		if err := unix.Unmount(ro.Merged, 0); err != nil {
			unix.Unmount(ro.Merged, unix.MNT_DETACH)
		}
	}()
	var dead []string
	var walk func(rel string)
	walk = func(rel string) {
		ents, _ := readDirents(filepath.Join(ro.Merged, rel))
		for _, e := range ents {
			child := path.Join(rel, e.name)
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(ro.Merged, child), &st); err != nil {
				dead = append(dead, child)
				continue
			}
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				walk(child)
			}
		}
	}
	walk(".")
	return dead
}

// isWhiteout reports whether p is a char device 0/0 or an xattr whiteout.
func isWhiteout(p string) bool {
	var st unix.Stat_t
	if unix.Lstat(p, &st) != nil {
		return false
	}
	if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
		return true
	}
	_, err := getXattr(p, "trusted.overlay.whiteout")
	return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == 0 && err == nil
}

// mismatch is a difference found between the two unions.
type mismatch struct {
	ops     []*op
	results [][2]string
	what    string // after which op, what differs
}

func (r *diffRun) fail(format string, args ...any) *mismatch {
	return &mismatch{ops: r.ops, results: r.results, what: fmt.Sprintf(format, args...)}
}

// step applies o to both unions and compares the outcomes and the paths
// it touched (the objects, and the listings of their directories).
func (r *diffRun) step(o *op) *mismatch {
	var before unix.Stat_t
	if u, ok := r.sub.m.(unionfuseMounter); ok && u.writeback() && o.Kind == "hold" &&
		unix.Stat(filepath.Join(r.ref.Merged, o.P), &before) == nil && before.Mode&unix.S_IFMT == unix.S_IFREG && before.Nlink > 1 {
		// A descriptor held on a hard-linked file: should its name be a
		// lower one, copied up later, fstat(2) through the descriptor
		// keeps the size it saw with the writeback cache, a documented
		// difference (fs/writeback.go). Not opened on either side.
		const skipped = "skipped: a hard-linked file, held with the writeback cache"
		r.ops = append(r.ops, o)
		r.results = append(r.results, [2]string{skipped, skipped})
		return nil
	}
	sameSize := o.Kind == "truncate" && unix.Stat(filepath.Join(r.ref.Merged, o.P), &before) == nil && before.Size == o.Size
	ra := o.apply(r.ref.Merged, &r.fds[0])
	rb := o.apply(r.sub.Merged, &r.fds[1])
	r.ops = append(r.ops, o)
	r.results = append(r.results, [2]string{ra, rb})
	if ra != rb {
		return r.fail("operation %d returned %q on the kernel, %q on %s", len(r.ops), ra, rb, r.sub.m.name())
	}
	if u, ok := r.sub.m.(unionfuseMounter); ok && u.writeback() && sameSize && ra == "ok" {
		// truncate(2) to the size a file has: ext4 under the kernel's
		// overlay sets a new mtime, while with the writeback cache the
		// kernel keeps the one it has (POSIX asks for none), a documented
		// difference (fs/writeback.go): give the file one mtime on both
		// sides.
		ts := unix.NsecToTimespec(time.Date(2001, 2, 3, 4, 5, 6, len(r.ops)*10, time.UTC).UnixNano())
		for _, root := range []string{r.ref.Merged, r.sub.Merged} {
			unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, o.P), []unix.Timespec{{Nsec: unix.UTIME_OMIT}, ts}, 0)
		}
	}
	if ra != "ok" && (o.Kind == "rename" || o.Kind == "noreplace" || o.Kind == "exchange") {
		// A rename(2) of a directory into a merged directory that then
		// fails (ENOTEMPTY ...) still bumps the source parent's mtime on
		// the kernel, which marks the directory opaque before it finds
		// the target in the way. unionfuse need not copy that side effect
		// of a failed call: give the parents the same mtime on both sides.
		for i, dir := range []string{path.Dir(o.P), path.Dir(o.Q)} {
			ts := unix.NsecToTimespec(time.Date(2001, 2, 3, 4, 5, 6, len(r.ops)*10+i, time.UTC).UnixNano())
			for _, root := range []string{r.ref.Merged, r.sub.Merged} {
				unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, dir), []unix.Timespec{{Nsec: unix.UTIME_OMIT}, ts}, unix.AT_SYMLINK_NOFOLLOW)
			}
		}
	}
	var diffs []string
	seen := map[string]bool{}
	for _, p := range []string{o.P, o.Q, path.Dir(o.P), path.Dir(o.Q)} {
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		a, b := r.describe(r.ref.Merged, p), r.describe(r.sub.Merged, p)
		if a != b {
			diffs = append(diffs, fmt.Sprintf("%s:\n\t\tkernel: %s\n\t\t%s: %s", p, a, r.sub.m.name(), b))
		}
	}
	if len(diffs) > 0 {
		return r.fail("after operation %d (%s), the paths it touched differ:\n\t%s", len(r.ops), o, strings.Join(diffs, "\n\t"))
	}
	return nil
}

// describe renders the object at rel below root and, for a directory, its
// listing, comparing the fields compareTrees compares.
func (r *diffRun) describe(root, rel string) string {
	n, st, err := readNode(filepath.Join(root, rel), snapOpts{})
	if err != nil {
		return errnoName(err)
	}
	cut := r.start.UnixNano()
	if n.Mtime >= cut {
		n.Mtime = 0 // "now": differs between the two runs
	}
	n.Ctime = 0
	if n.Type == "char" || !*flagCheckNlink {
		n.Nlink = 0
	}
	s := fmt.Sprintf("%+v", *n)
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		ents, err := readDirents(filepath.Join(root, rel))
		var names []string
		for _, e := range ents {
			names = append(names, e.name)
		}
		s += fmt.Sprintf(" listing=[%s] err=%v", strings.Join(names, " "), err)
	}
	return s
}

// cmp says how the round compares trees.
func (r *diffRun) cmp() cmpOpts {
	return cmpOpts{mtimeCutoff: r.start, noNlink: !*flagCheckNlink}
}

// compareTrees compares the whole merged trees.
func (r *diffRun) compareTrees() *mismatch {
	r.trees++
	o := snapOpts{keepXattr: mergedXattr, checkDino: *flagCheckDino && r.sub.m.name() != "kernel"}
	a, err := snapshot(r.ref.Merged, snapOpts{keepXattr: mergedXattr})
	if err != nil {
		return r.fail("snapshot of the kernel's merged tree: %v", err)
	}
	b, err := snapshot(r.sub.Merged, o)
	if err != nil {
		return r.fail("snapshot of %s's merged tree: %v", r.sub.m.name(), err)
	}
	if d := diffTrees(a, b, r.cmp()); len(d) > 0 {
		return r.fail("after operation %d the merged trees differ (want = kernel, got = %s):\n\t%s",
			len(r.ops), r.sub.m.name(), strings.Join(d, "\n\t"))
	}
	if d := dinoErrors(b); len(d) > 0 {
		return r.fail("after operation %d %s lists entries whose d_ino is not their st_ino:\n\t%s",
			len(r.ops), r.sub.m.name(), strings.Join(d, "\n\t"))
	}
	return nil
}

// finish unmounts both unions and compares the upper directories byte for
// byte, and the subject's lowers with what they were before mounting.
func (r *diffRun) finish() *mismatch {
	r.fds[0].closeAll()
	r.fds[1].closeAll()
	if err := r.ref.Unmount(); err != nil {
		return r.fail("unmount kernel overlay: %v", err)
	}
	if err := r.sub.Unmount(); err != nil {
		return r.fail("unmount %s: %v", r.sub.m.name(), err)
	}
	o := snapOpts{keepXattr: upperXattr}
	a, err := snapshot(r.ref.Upper, o)
	if err != nil {
		return r.fail("snapshot kernel upper: %v", err)
	}
	b, err := snapshot(r.sub.Upper, o)
	if err != nil {
		return r.fail("snapshot %s upper: %v", r.sub.m.name(), err)
	}
	if d := diffTrees(a, b, r.cmp()); len(d) > 0 {
		return r.fail("after unmounting, after %d operations, the upper directories differ (want = kernel's, got = %s's):\n\t%s",
			len(r.ops), r.sub.m.name(), strings.Join(d, "\n\t"))
	}
	for i, before := range r.lowersBefore {
		after, err := snapshot(r.sub.Lowers[i], snapOpts{})
		if err != nil {
			return r.fail("snapshot lower %d: %v", i, err)
		}
		if d := diffTrees(before, after, cmpOpts{strict: true}); len(d) > 0 {
			return r.fail("%s changed lower layer %d (want = before mounting):\n\t%s", r.sub.m.name(), i, strings.Join(d, "\n\t"))
		}
	}
	return nil
}

// abort unmounts both unions after a mismatch, ignoring what they say.
func (r *diffRun) abort() {
	r.fds[0].closeAll()
	r.fds[1].closeAll()
	r.ref.Unmount()
	if err := r.sub.Unmount(); err != nil {
		r.t.Logf("after the mismatch: %v", err)
	}
}

// differentialRound runs one round of nops random operations; it returns
// the operations done, the whole-tree comparisons made and the first
// mismatch, if any.
func differentialRound(t *testing.T, m mounter, seed int64, nops int) (int, int, *mismatch) {
	r := newDiffRun(t, m, seed)
	g := &opGen{rng: rand.New(rand.NewPCG(uint64(seed), 2))}
	every := max(*flagCompareEvery, 1)
	for i := 0; i < nops; i++ {
		g.scan(r.ref.Merged)
		if f := r.step(g.next()); f != nil {
			r.abort()
			return len(r.ops), r.trees, f
		}
		if (i+1)%every == 0 || i == nops-1 {
			if f := r.compareTrees(); f != nil {
				r.abort()
				return len(r.ops), r.trees, f
			}
		}
	}
	return len(r.ops), r.trees, r.finish()
}

// replay applies ops on fresh copies of the round's layers, checking each
// operation's outcome and the paths it touched, the whole trees as often as
// a round does (more often would change what the kernel has cached, and
// hide defects that depend on it), and the upper directories at the end,
// and returns the first mismatch.
func replay(t *testing.T, m mounter, seed int64, ops []*op) *mismatch {
	r := newDiffRun(t, m, seed)
	every := max(*flagCompareEvery, 1)
	for i, o := range ops {
		f := r.step(o)
		if f == nil && (i+1)%every == 0 {
			f = r.compareTrees()
		}
		if f != nil {
			r.abort()
			return f
		}
	}
	if f := r.compareTrees(); f != nil {
		r.abort()
		return f
	}
	return r.finish()
}

// shrink looks, within budget, for a shorter sequence of ops that still
// shows a mismatch: it removes chunks of operations, halving the chunk
// size down to single operations, while a mismatch remains.
func shrink(t *testing.T, m mounter, seed int64, ops []*op, budget time.Duration) *mismatch {
	deadline := time.Now().Add(budget)
	best := replay(t, m, seed, ops)
	if best == nil {
		return &mismatch{ops: ops, what: "the mismatch did NOT reproduce when the operations were replayed on fresh layers (timing- or cache-dependent?)"}
	}
	cur := best.ops
	for chunk := max(len(cur)/2, 1); time.Now().Before(deadline); {
		for i := 0; i+chunk <= len(cur) && time.Now().Before(deadline); {
			cand := append(append([]*op{}, cur[:i]...), cur[i+chunk:]...)
			if f := replay(t, m, seed, cand); f != nil {
				best, cur = f, f.ops
				continue
			}
			i += chunk
		}
		if chunk == 1 {
			break
		}
		chunk /= 2
	}
	return best
}

// layerFacts describes, for every path the operations name and its
// parents, what each layer of the round holds there before mounting.
func layerFacts(t *testing.T, seed int64, ops []*op) string {
	l := newLayout(t, t.TempDir(), 3)
	buildRoundLayers(t, seed, l)
	paths := map[string]bool{}
	for _, o := range ops {
		for _, p := range []string{o.P, o.Q} {
			for ; p != "" && p != "." && p != "/"; p = path.Dir(p) {
				paths[p] = true
			}
		}
	}
	var b strings.Builder
	b.WriteString("the layers at those paths before mounting (upper, then lowers top first):\n")
	for _, p := range sortedKeys(paths) {
		var facts []string
		for i, root := range append([]string{l.Upper}, l.Lowers...) {
			name := "upper"
			if i > 0 {
				name = fmt.Sprintf("lower%d", i-1)
			}
			n, _, err := readNode(filepath.Join(root, p), snapOpts{})
			if err != nil {
				continue
			}
			f := name + ": " + n.brief()
			if len(n.Xattrs) > 0 {
				f += " " + fmtXattrs(n.Xattrs)
			}
			facts = append(facts, f)
		}
		if len(facts) > 0 {
			fmt.Fprintf(&b, "  %s: %s\n", p, strings.Join(facts, "; "))
		}
	}
	return b.String()
}

// report renders f so that the fs engineer can replay it by hand or with
// the printed command.
func (f *mismatch) report(sub string, seed int64, nops int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kernel overlay vs %s differ; round seed %d\n", sub, seed)
	fmt.Fprintf(&b, "replay: go test ./tests -run 'TestDifferential$' -count=1 -v -args -seed=%d -rounds=1 -ops=%d\n", seed, nops)
	fmt.Fprintf(&b, "layers: diffLayers(seed %d) in tests/differential_test.go (3 lowers + upper)\n", seed)
	fmt.Fprintf(&b, "operations (=> result on the kernel, and on %s where it differs):\n", sub)
	for i, o := range f.ops {
		res := ""
		if i < len(f.results) {
			res = "=> " + f.results[i][0]
			if f.results[i][1] != f.results[i][0] {
				res += fmt.Sprintf("   <<< %s: %s", sub, f.results[i][1])
			}
		}
		fmt.Fprintf(&b, "  %3d. %s  %s\n", i+1, o, res)
	}
	b.WriteString(f.what)
	return b.String()
}

// TestDifferentialRegressions replays, on the differential layers without
// random items, the minimized sequences of the defects the differential
// test has found, so each stays fixed whatever seeds later runs draw.
func TestDifferentialRegressions(t *testing.T) {
	testutil.RequireMounts(t)
	sub := subject(t)
	slot0 := func(kind string, o op) *op { o.Kind, o.Slot = kind, 0; return &o }
	cases := []scriptedCase{
		{"pure upper dir renamed into a merged dir is marked opaque", []*op{
			{Kind: "rename", P: "updir", Q: "d1/moved"}}},
		{"open O_RDONLY|O_TRUNC of a lower file truncates what is read", []*op{
			slot0("hold", op{P: "d1/b", Flags: unix.O_RDONLY | unix.O_TRUNC}),
			{Kind: "read", P: "d1/b"}}},
		{"fchmod through an fd whose name was unlinked", []*op{
			slot0("hold", op{P: "hl2", Flags: unix.O_RDWR}),
			{Kind: "unlink", P: "hl2"},
			slot0("fdchmod", op{Mode: 0o755})}},
		{"fsetxattr through an fd whose name was renamed over", []*op{
			slot0("hold", op{P: "d1/b", Flags: unix.O_RDWR}),
			{Kind: "rename", P: "d1/u", Q: "d1/b"},
			slot0("fdsetxattr", op{Name: "user.a", Value: "v1"})}},
		{"fsetxattr on a directory removed while open", []*op{
			{Kind: "mkdir", P: "d1/x", Mode: 0o444},
			slot0("hold", op{P: "d1/x", Flags: unix.O_RDONLY}),
			{Kind: "rmdir", P: "d1/x"},
			slot0("fdsetxattr", op{Name: "user.a", Value: "v1"})}},
		{"chown -1:-1 of a set-user-ID file by another user", []*op{
			{Kind: "chown", P: "suid", UID: -1, GID: -1, As: 65534}}},
		{"fstat of a held lower fifo renamed over", []*op{
			slot0("hold", op{P: "fifo1", Flags: unix.O_RDWR}),
			{Kind: "rename", P: "d1/b", Q: "fifo1"},
			slot0("fdstat", op{})}},
		{"fstat of a held fifo after unlink", []*op{
			{Kind: "mkfifo", P: "d1/np", Mode: 0o640},
			slot0("hold", op{P: "d1/np", Flags: unix.O_RDWR}),
			{Kind: "unlink", P: "d1/np"},
			slot0("fdstat", op{})}},
		{"fchmod through a descriptor of a hard-linked lower fifo", []*op{
			slot0("hold", op{P: "fifo1", Flags: unix.O_RDONLY | unix.O_NONBLOCK}),
			slot0("fdchmod", op{Mode: 0o600}),
			{Kind: "stat", P: "fifo1"}}},
		{"RENAME_EXCHANGE of two hard-linked lower files", []*op{
			{Kind: "exchange", P: "hl2", Q: "fifo2"},
			{Kind: "stat", P: "hl2"}, {Kind: "stat", P: "fifo2"}}},
		{"a hard-linked lower file keeps its inode when its directory moves", []*op{
			{Kind: "stat", P: "d2/hl3"},
			{Kind: "rename", P: "d2", Q: "d1/moved"},
			{Kind: "rename", P: "d1/moved/hl3", Q: "d1/moved/hl3", As: 65534}}},
		{"RENAME_EXCHANGE of two names of one hard-linked lower file", []*op{
			{Kind: "exchange", P: "hl2", Q: "d2/hl3"},
			{Kind: "stat", P: "hl2"}, {Kind: "stat", P: "d2/hl3"}}},
		{"chown -1:-1 by another user while the file is open read-only", []*op{
			slot0("hold", op{P: "suid", Flags: unix.O_RDONLY}),
			{Kind: "chown", P: "suid", UID: -1, GID: -1, As: 65534}}},
		{"chown -1:-1 by a user outside the group of a set-group-ID file", []*op{
			{Kind: "chmod", P: "own", Mode: 0o2644},
			{Kind: "chown", P: "own", UID: -1, GID: -1, As: 65534}}},
		{"fchmod of a directory removed while open", []*op{
			{Kind: "mkdir", P: "updir/e", Mode: 0o755},
			slot0("hold", op{P: "updir/e", Flags: unix.O_RDONLY}),
			{Kind: "rmdir", P: "updir/e"},
			slot0("fdchmod", op{Mode: 0o700}),
			slot0("fdstat", op{})}},
		{"fstat of an open directory replaced by rename", []*op{
			{Kind: "mkdir", P: "updir/dA", Mode: 0o755},
			{Kind: "mkdir", P: "updir/dB", Mode: 0o700},
			slot0("hold", op{P: "updir/dB", Flags: unix.O_RDONLY}),
			{Kind: "rename", P: "updir/dA", Q: "updir/dB"},
			slot0("fdstat", op{})}},
		{"link to a lower file then a write through the new name shows through the old", []*op{
			{Kind: "link", P: "d1/newmid", Q: "d5/x"},
			{Kind: "append", P: "d5/x", Size: 24, Fill: 1},
			{Kind: "stat", P: "d1/newmid"}}},
		{"rename over one name of an upper hard link keeps the other name", []*op{
			{Kind: "link", P: "suid", Q: "d1/suid2"},
			{Kind: "rename", P: "d1/u", Q: "suid"},
			{Kind: "stat", P: "d1/suid2"}}},
		{"link to a hard-linked lower file: link counts", []*op{
			{Kind: "link", P: "hl2", Q: "updir/x"},
			{Kind: "stat", P: "hl2"}, {Kind: "stat", P: "hl1"}}},
		{"copy-up of a hard-linked lower file: d_ino and st_ino agree", []*op{
			{Kind: "write", P: "hl2", Mode: 0o640, Size: 100, Fill: 2},
			{Kind: "readdir", P: "."}}},
		{"failed setxattr still copies a hard-linked lower file up", []*op{
			{Kind: "setxattr", P: "hl1", Name: "user.k", Value: "v1", Flags: unix.XATTR_REPLACE},
			{Kind: "stat", P: "hl1"}}},
		{"rename between two names of a hard-linked lower file", []*op{
			{Kind: "rename", P: "hl2", Q: "d2/hl3"}}},
		{"read-only fd opened before a copy-up reads the new data", []*op{
			slot0("hold", op{P: "d1/b", Flags: unix.O_RDONLY}),
			{Kind: "write", P: "d1/b", Mode: 0o644, Size: 100, Fill: 3},
			slot0("fdread", op{})}},
		{"read-only fd opened before an append through another name", []*op{
			slot0("hold", op{P: "d3/i", Flags: unix.O_RDONLY}),
			{Kind: "link", P: "d3/i", Q: "updir/i2"},
			{Kind: "append", P: "updir/i2", Size: 5000, Fill: 4},
			slot0("fdread", op{})}},
		{"directory renamed onto a whited-out lower file", []*op{
			{Kind: "mkdir", P: "updir/nd", Mode: 0o755},
			{Kind: "rename", P: "updir/nd", Q: "d2/e"}}},
		{"fchmod through a read-only fd of a hard-linked lower file copied up since", []*op{
			slot0("hold", op{P: "hl2", Flags: unix.O_RDONLY}),
			{Kind: "chmod", P: "hl2", Mode: 0o1777},
			slot0("fdchmod", op{Mode: 0o2755})}},
		{"fstat through a read-only fd of a hard-linked lower file changed by name since", []*op{
			slot0("hold", op{P: "hl2", Flags: unix.O_RDONLY}),
			{Kind: "chmod", P: "hl2", Mode: 0o1777},
			{Kind: "chmod", P: "hl2", Mode: 0o600},
			slot0("fdstat", op{})}},
		{"fstat through a read-only fd of a hard-linked lower file linked since", []*op{
			slot0("hold", op{P: "hl2", Flags: unix.O_RDONLY}),
			{Kind: "chmod", P: "hl2", Mode: 0o1777},
			{Kind: "link", P: "hl2", Q: "updir/x"},
			slot0("fdstat", op{})}},
		{"fstat through a read-only fd of a hard-linked lower file unlinked since", []*op{
			slot0("hold", op{P: "hl2", Flags: unix.O_RDONLY}),
			{Kind: "chmod", P: "hl2", Mode: 0o1777},
			{Kind: "unlink", P: "hl2"},
			slot0("fdstat", op{})}},
		{"chown to the same owner drops set-user-ID of a fifo", []*op{
			{Kind: "mkfifo", P: "d1/ff", Mode: 0o4755},
			{Kind: "chown", P: "d1/ff", UID: -1, GID: -1}}},
		{"chown to the same owner drops set-group-ID of a group-executable fifo", []*op{
			{Kind: "mkfifo", P: "d1/ff", Mode: 0o2775},
			{Kind: "chown", P: "d1/ff", UID: -1, GID: -1}}},
		{"chown by root to the same owner keeps set-group-ID of a file in another group", []*op{
			{Kind: "write", P: "updir/s", Mode: 0o644, Size: 10, Fill: 1},
			{Kind: "chown", P: "updir/s", UID: -1, GID: 1000},
			{Kind: "chmod", P: "updir/s", Mode: 0o2644},
			{Kind: "chown", P: "updir/s", UID: -1, GID: -1}}},
		{"chown -1:-1 by another user while root holds the file open for writing", []*op{
			slot0("hold", op{P: "suid", Flags: unix.O_RDWR}),
			{Kind: "chown", P: "suid", UID: -1, GID: -1, As: 65534}}},
	}
	runScripted(t, withPassthrough(sub), cases)

	// With metacopy=on, where a rename copies a hard-linked lower file up
	// without its data to a new kernel inode (with passthrough the node
	// is also renewed), and the descriptor opened before stays on the old
	// inode (supersede).
	if _, ok := sub.(unionfuseMounter); ok {
		runScripted(t, withPassthrough(unionfuseMounter{metacopy: true}), []scriptedCase{
			{"metacopy: fsetxattr through an fd held on a lower file renamed since", []*op{
				slot0("hold", op{P: "hl2", Flags: unix.O_RDONLY}),
				{Kind: "rename", P: "hl2", Q: "dangling"},
				slot0("fdsetxattr", op{Name: "user.a", Value: "value two"}),
				slot0("fdstat", op{})}},
			{"metacopy: fsetxattr through an fd held on a lower file renamed, then renamed over", []*op{
				slot0("hold", op{P: "hl2", Flags: unix.O_RDONLY}),
				{Kind: "rename", P: "hl2", Q: "dangling"},
				{Kind: "rename", P: "up1", Q: "dangling"},
				slot0("fdsetxattr", op{Name: "user.a", Value: "value two"}),
				slot0("fdstat", op{})}},
		})
		// With index=on, where two names of a hard-linked lower file are
		// one object once one of them was copied up: a rename of one over
		// the other does nothing (the kernel's overlay does not even get
		// it), while unionfuse has a node for each name, whose dentries
		// the kernel then moves (tree.trade).
		runScripted(t, []mounter{unionfuseMounter{index: true}}, []scriptedCase{
			{"index: RENAME_EXCHANGE of two names of an indexed file, then use both", []*op{
				{Kind: "append", P: "d2/hl3", Size: 5000, Fill: 1},
				{Kind: "exchange", P: "d2/hl3", Q: "hl2"},
				{Kind: "readdir", P: ""},
				{Kind: "stat", P: "hl2"},
				{Kind: "read", P: "hl2"},
				{Kind: "chmod", P: "hl2", Mode: 0o600},
				{Kind: "append", P: "hl2", Size: 100, Fill: 2},
				{Kind: "unlink", P: "d2/hl3"},
				{Kind: "stat", P: "hl2"},
				{Kind: "stat", P: "hl1"}}},
			{"index: rename of one name of an indexed file over another", []*op{
				{Kind: "append", P: "d2/hl3", Size: 5000, Fill: 1},
				{Kind: "rename", P: "d2/hl3", Q: "hl2"},
				{Kind: "stat", P: "hl2"},
				{Kind: "stat", P: "d2/hl3"},
				{Kind: "readdir", P: "d2"},
				{Kind: "unlink", P: "hl2"},
				{Kind: "append", P: "d2/hl3", Size: 10, Fill: 3},
				{Kind: "read", P: "d2/hl3"},
				{Kind: "stat", P: "hl1"}}},
			{"index: RENAME_EXCHANGE of two names of an indexed file held open", []*op{
				slot0("hold", op{P: "d2/hl3", Flags: unix.O_RDWR}),
				{Kind: "append", P: "hl1", Size: 300, Fill: 4},
				{Kind: "exchange", P: "hl1", Q: "d2/hl3"},
				slot0("fdwrite", op{Off: 10, Size: 20, Fill: 5}),
				slot0("fdstat", op{}),
				{Kind: "read", P: "hl1"},
				{Kind: "stat", P: "d2/hl3"}}},
		})
	}
}

// scriptedCase is a named list of operations replayed on the differential
// test's base layers, on the kernel and on a subject side by side.
type scriptedCase struct {
	name string
	ops  []*op
}

// passthroughDiffers names the scripted cases where unionfuse with
// passthrough is known to differ from the kernel, and says why: they are
// skipped there.
var passthroughDiffers = map[string]string{
	// fs/killpriv.go: killByOtherDenied.
	"chown -1:-1 by another user while root holds the file open for writing": "without the writeback cache a write's drop of set-id bits and this chown are the same empty SETATTR",
}

// withPassthrough returns sub and, when sub is unionfuse, unionfuse with
// passthrough as well.
func withPassthrough(sub mounter) []mounter {
	subs := []mounter{sub}
	if u, ok := sub.(unionfuseMounter); ok {
		u.passthrough = true
		subs = append(subs, u)
	}
	return subs
}

// runScripted replays every case on every subject against the kernel, a
// subtest each, and reports the (already minimal) difference. With
// passthrough, reads through a descriptor opened before a copy-up differ
// by design (see TestDifferentialPassthrough); such cases are skipped.
func runScripted(t *testing.T, subs []mounter, cases []scriptedCase) {
	for _, m := range subs {
		for _, c := range cases {
			name := strings.NewReplacer(" ", "_", ",", "").Replace(c.name)
			u, isUnionfuse := m.(unionfuseMounter)
			if isUnionfuse && u.passthrough {
				name = "passthrough/" + name
			}
			t.Run(name, func(t *testing.T) {
				if isUnionfuse && u.passthrough && hasOp(c.ops, "fdread") {
					t.Skip("reads through a descriptor opened before a copy-up differ by design with passthrough")
				}
				if why := passthroughDiffers[c.name]; isUnionfuse && u.passthrough && why != "" {
					t.Skip("known to differ with passthrough: " + why)
				}
				if f := replay(t, m, baseLayersOnly, c.ops); f != nil {
					t.Error(f.report(m.name(), baseLayersOnly, len(c.ops)) + "\n" + layerFacts(t, baseLayersOnly, f.ops))
				}
			})
		}
	}
}

// hasOp reports whether ops holds an operation of kind.
func hasOp(ops []*op, kind string) bool {
	for _, o := range ops {
		if o.Kind == kind {
			return true
		}
	}
	return false
}
