package tests

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// The exchange race: renameat2(RENAME_EXCHANGE) never leaves a name
// absent, so while workers only exchange directories with directories and
// files with files, every name of the starting tree exists at every
// moment with the same type. Readers that stat, open, read and list those
// names may therefore see any content of the starting set, but no error.
// Before the whole RENAME request ran under the overlay's lock, go-fuse
// updated its node tree after the overlay's rename had returned: a lookup
// in that window computed a directory's path from the old tree, found the
// other directory's entries (or none, then cached for an hour), and left
// go-fuse's tree disagreeing with upper.

// exchangeDirs are the directories at the root: D* in the lower layer
// (they move with redirects), U* in upper only.
var exchangeDirs = []string{"D0", "D1", "D2", "D3", "U0", "U1"}

// exchangeTree returns every path of the starting tree below one of
// exchangeDirs, directories first: files f0..f3 and a subdirectory s
// holding g0 and g1.
func exchangeTree() (dirs, files []string) {
	for _, d := range exchangeDirs {
		dirs = append(dirs, d, d+"/s")
		for i := 0; i < 4; i++ {
			files = append(files, fmt.Sprintf("%s/f%d", d, i))
		}
		files = append(files, d+"/s/g0", d+"/s/g1")
	}
	return dirs, files
}

// buildExchangeTree writes the starting tree: each file holds its own
// path, so a file that moved still names where it started.
func buildExchangeTree(t *testing.T, l layout) {
	t.Helper()
	dirs, files := exchangeTree()
	in := func(p string) string {
		if strings.HasPrefix(p, "U") {
			return l.Upper
		}
		return l.Lowers[0]
	}
	for _, d := range dirs {
		if err := os.Mkdir(filepath.Join(in(d), d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(in(f), f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// exchangeRaceOutcome gathers the errors of the workers, a few of each
// kind.
type exchangeRaceOutcome struct {
	mu     sync.Mutex
	errs   []string
	seen   map[string]int
	ops    int
	exchgs int
}

func (o *exchangeRaceOutcome) fail(kind, format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen[kind]++
	if o.seen[kind] <= 3 {
		o.errs = append(o.errs, fmt.Sprintf(format, args...))
	}
}

// exchangeOne swaps two random names of one class: root directories,
// subdirectories, or files (across directories).
func exchangeOne(root string, rng *rand.Rand) (a, b string, err error) {
	d1, d2 := exchangeDirs[rng.Intn(len(exchangeDirs))], exchangeDirs[rng.Intn(len(exchangeDirs))]
	switch rng.Intn(4) {
	case 0:
		a, b = d1, d2
	case 1:
		a, b = d1+"/s", d2+"/s"
	case 2:
		a, b = fmt.Sprintf("%s/s/g%d", d1, rng.Intn(2)), fmt.Sprintf("%s/s/g%d", d2, rng.Intn(2))
	default:
		a, b = fmt.Sprintf("%s/f%d", d1, rng.Intn(4)), fmt.Sprintf("%s/f%d", d2, rng.Intn(4))
	}
	err = unix.Renameat2(unix.AT_FDCWD, filepath.Join(root, a), unix.AT_FDCWD, filepath.Join(root, b), unix.RENAME_EXCHANGE)
	return a, b, err
}

// readOne stats, opens and reads (a file) or lists (a directory) one
// random name of the starting tree and reports what is wrong.
func readOne(root string, rng *rand.Rand, dirs, files []string, starts map[string]bool, o *exchangeRaceOutcome) {
	if rng.Intn(2) == 0 {
		d := dirs[rng.Intn(len(dirs))]
		p := filepath.Join(root, d)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			o.fail("stat dir", "stat %s: mode %o, %v; want a directory", d, st.Mode, err)
			return
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			o.fail("readdir", "readdir %s: %v", d, err)
			return
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		want := "f0 f1 f2 f3 s"
		if strings.HasSuffix(d, "/s") {
			want = "g0 g1"
		}
		if got := strings.Join(names, " "); got != want {
			o.fail("readdir", "readdir %s = %s; want %s", d, got, want)
		}
		return
	}
	f := files[rng.Intn(len(files))]
	p := filepath.Join(root, f)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		o.fail("stat file", "stat %s: mode %o, %v; want a regular file", f, st.Mode, err)
		return
	}
	b, err := os.ReadFile(p)
	if err != nil {
		o.fail("read", "read %s: %v", f, err)
		return
	}
	if !starts[string(b)] {
		o.fail("content", "%s holds %q: no file of the starting tree", f, b)
	}
}

// TestExchangeRace: workers swap directories (with lower content, and of
// upper only) and files with renameat2(RENAME_EXCHANGE) while readers
// stat, open, read and list the names; no reader may see an error or a
// foreign content, every file of the starting tree is still there once,
// and the kernel's overlayfs shows the upper as the union did.
func TestExchangeRace(t *testing.T) {
	testutil.RequireMounts(t)
	l := newLayout(t, testDir(t), 1)
	buildExchangeTree(t, l)
	start := time.Now()
	u := mountUnion(t, unionfuseMounter{}, l)

	dirs, files := exchangeTree()
	starts := make(map[string]bool)
	for _, f := range files {
		starts[f] = true
	}
	o := &exchangeRaceOutcome{seen: make(map[string]int)}
	const exchangers, readers = 4, 4
	duration := 6 * time.Second
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for i := 0; i < exchangers+readers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(start.UnixNano() + int64(i)))
			n := 0
			for ; time.Now().Before(deadline); n++ {
				if i >= exchangers {
					readOne(u.Merged, rng, dirs, files, starts, o)
					continue
				}
				if a, b, err := exchangeOne(u.Merged, rng); err != nil && !(errors.Is(err, unix.EINVAL) && a == b) {
					// Exchanging a name with itself is the only refusal:
					// nothing else a racing tree explains.
					o.fail("exchange", "exchange %s %s: %v", a, b, err)
				}
			}
			o.mu.Lock()
			o.ops += n
			if i < exchangers {
				o.exchgs += n
			}
			o.mu.Unlock()
		}(i)
	}
	wg.Wait()
	t.Logf("seed %d: %d operations (%d exchanges) in %v", start.UnixNano(), o.ops, o.exchgs, duration)
	for _, e := range o.errs {
		t.Error(e)
	}
	for kind, n := range o.seen {
		t.Errorf("%d errors of kind %q", n, kind)
	}

	// Every starting file is still there, once.
	var got []string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(u.Merged, f))
		if err != nil {
			t.Errorf("after the race: %v", err)
			continue
		}
		got = append(got, string(b))
	}
	sort.Strings(got)
	want := append([]string(nil), files...)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("after the race the files hold %q; want each of %q once", got, want)
	}
	union := mustSnapshot(t, u.Merged, snapOpts{keepXattr: mergedXattr})
	u.mustUnmount()

	checkKernelAgrees(t, l, union, start)
}
