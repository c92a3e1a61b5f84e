package tests

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestSeedTutorial replays the OverlayFS tutorial of
// shared/seeds/002_0fd60b71091e6cc9.txt step by step — lower f1 f2 f3,
// upper f3 f4; add f5, delete f2, append to f1 — asserting the listings
// and contents the tutorial shows, the whiteout c 0,0 left in upper, and a
// lower layer that is not changed in any way. It runs on the kernel too, to
// show that what it asserts is what overlayfs does.
func TestSeedTutorial(t *testing.T) {
	testutil.RequireMounts(t)
	for _, m := range []mounter{kernelOverlay{}, subject(t)} {
		t.Run(m.name(), func(t *testing.T) { seedTutorial(t, m) })
	}
}

const (
	seedF1  = "This is a file 1 in lower layer\n"
	seedF2  = "This is a file 2 in lower layer\n"
	seedF3  = "This is a file 3 in lower layer\n"
	seedU3  = "This is a file 3 in upper layer\n"
	seedU4  = "This is a file 4 in upper layer\n"
	seedF5  = "A new file called f5 in merged view\n"
	seedAdd = "adding some random content\n"
)

func seedTutorial(t *testing.T, m mounter) {
	dir := testDir(t)
	l := newLayout(t, dir, 1)
	lower := l.Lowers[0]
	// $ echo "This is a file 1 in lower layer" > lower/f1 ...
	testutil.BuildDir(t, lower, []testutil.Item{
		{Path: "f1", Kind: 'f', Data: seedF1},
		{Path: "f2", Kind: 'f', Data: seedF2},
		{Path: "f3", Kind: 'f', Data: seedF3},
	})
	testutil.BuildDir(t, l.Upper, []testutil.Item{
		{Path: "f3", Kind: 'f', Data: seedU3},
		{Path: "f4", Kind: 'f', Data: seedU4},
	})
	lowerBefore := mustSnapshot(t, lower, snapOpts{})

	// $ mount -t overlay ... demo/merged
	u := mountUnion(t, m, l)
	merged := l.Merged

	// $ ls -l demo/merged/ ; cat demo/merged/f3
	wantNames(t, "merged", merged, "f1", "f2", "f3", "f4")
	for _, f := range []string{"f1", "f2", "f3", "f4"} {
		wantSize(t, filepath.Join(merged, f), 32)
	}
	wantContent(t, filepath.Join(merged, "f3"), seedU3)
	wantContent(t, filepath.Join(merged, "f1"), seedF1)

	// Adding a file: $ echo "A new file called f5 in merged view" > demo/merged/f5
	if err := os.WriteFile(filepath.Join(merged, "f5"), []byte(seedF5), 0o664); err != nil {
		t.Fatalf("add f5: %v", err)
	}
	wantNames(t, "merged after adding f5", merged, "f1", "f2", "f3", "f4", "f5")
	wantSize(t, filepath.Join(merged, "f5"), 36)
	wantNames(t, "upper after adding f5", l.Upper, "f3", "f4", "f5")
	wantContent(t, filepath.Join(l.Upper, "f5"), seedF5)

	// Deleting a file: $ rm demo/merged/f2
	if err := os.Remove(filepath.Join(merged, "f2")); err != nil {
		t.Fatalf("rm f2: %v", err)
	}
	wantNames(t, "merged after rm f2", merged, "f1", "f3", "f4", "f5")
	if _, err := os.Lstat(filepath.Join(merged, "f2")); !os.IsNotExist(err) {
		t.Errorf("lstat merged/f2 after rm: %v, want ENOENT", err)
	}
	wantNames(t, "upper after rm f2", l.Upper, "f2", "f3", "f4", "f5")
	wantWhiteout(t, filepath.Join(l.Upper, "f2"))
	wantNames(t, "lower after rm f2", lower, "f1", "f2", "f3")

	// Modify file: $ cat demo/merged/f1; echo "adding some random content" >> demo/merged/f1
	wantContent(t, filepath.Join(merged, "f1"), seedF1)
	f, err := os.OpenFile(filepath.Join(merged, "f1"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("open f1 for append: %v", err)
	}
	if _, err := f.WriteString(seedAdd); err != nil {
		t.Fatalf("append to f1: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close f1: %v", err)
	}
	wantContent(t, filepath.Join(merged, "f1"), seedF1+seedAdd)
	wantContent(t, filepath.Join(l.Upper, "f1"), seedF1+seedAdd)
	wantContent(t, filepath.Join(lower, "f1"), seedF1)
	wantNames(t, "merged at the end", merged, "f1", "f3", "f4", "f5")

	u.mustUnmount()
	// After unmounting, the upper holds exactly the tutorial's changes.
	wantNames(t, "upper at the end", l.Upper, "f1", "f2", "f3", "f4", "f5")
	wantWhiteout(t, filepath.Join(l.Upper, "f2"))
	wantContent(t, filepath.Join(l.Upper, "f3"), seedU3)
	wantContent(t, filepath.Join(l.Upper, "f4"), seedU4)
	// The lower layer is byte for byte, mode, owner, xattr and timestamp
	// for timestamp what it was.
	lowerAfter := mustSnapshot(t, lower, snapOpts{})
	if d := diffTrees(lowerBefore, lowerAfter, cmpOpts{strict: true}); len(d) > 0 {
		t.Errorf("lower layer changed:\n\t%s", strings.Join(d, "\n\t"))
	}
}

// wantNames checks the names listed in dir.
func wantNames(t *testing.T, what, dir string, want ...string) {
	t.Helper()
	ents, err := readDirents(dir)
	if err != nil {
		t.Fatalf("%s: readdir %s: %v", what, dir, err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.name)
	}
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s: ls %s = [%s], want [%s]", what, dir, strings.Join(got, " "), strings.Join(want, " "))
	}
}

func wantContent(t *testing.T, p, want string) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("cat %s: %v", p, err)
		return
	}
	if string(got) != want {
		t.Errorf("cat %s = %q, want %q", p, got, want)
	}
}

func wantSize(t *testing.T, p string, want int64) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Errorf("stat %s: %v", p, err)
		return
	}
	if fi.Size() != want {
		t.Errorf("size of %s = %d, want %d", p, fi.Size(), want)
	}
}

// wantWhiteout checks that p is the kernel's whiteout: c--------- 0,0.
func wantWhiteout(t *testing.T, p string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Errorf("whiteout %s: %v", p, err)
		return
	}
	if st.Mode != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("%s: mode %07o rdev %d,%d, want a whiteout c--------- 0,0 (mode %07o)",
			p, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), unix.S_IFCHR)
	}
}
