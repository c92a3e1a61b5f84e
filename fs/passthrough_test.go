package fs

import (
	"bytes"
	"crypto/sha256"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// mountForTest mounts a union of one lower layer (filled by fill) in temp
// dirs and unmounts it when the test ends.
func mountForTest(t *testing.T, cfg Config, fill func(lower string)) (merged, lower, upper string) {
	t.Helper()
	_, merged, lower, upper = mountedForTest(t, cfg, fill)
	return merged, lower, upper
}

// mountedForTest is mountForTest that also returns the mount.
func mountedForTest(t *testing.T, cfg Config, fill func(lower string)) (m *Mounted, merged, lower, upper string) {
	t.Helper()
	testutil.RequireFuse(t)
	base := t.TempDir()
	lower, upper = filepath.Join(base, "lower"), filepath.Join(base, "upper")
	work, merged := filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fill(lower)
	cfg.Lowers, cfg.Upper, cfg.Work = []string{lower}, upper, work
	m, err := Mount(merged, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
			unix.Unmount(merged, unix.MNT_DETACH)
		}
	})
	return m, merged, lower, upper
}

func treeSums(t *testing.T, root string) map[string][32]byte {
	t.Helper()
	sums := map[string][32]byte{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			sums[p] = sha256.Sum256(b)
		}
		return nil
	})
	return sums
}

// TestLowerNeverWritten drives random sequences of opens, copy-ups, mmaps
// and writes through the mount — with passthrough on where the kernel has
// it — and checks that no byte of the lower layer changes and that every
// fresh open sees exactly the data written.
func TestLowerNeverWritten(t *testing.T) {
	for _, pt := range []bool{true, false} {
		name := "passthrough"
		if !pt {
			name = "no-passthrough"
		}
		t.Run(name, func(t *testing.T) {
			const nfiles = 4
			merged, lower, _ := mountForTest(t, Config{NoPassthrough: !pt}, func(lower string) {
				for i := 0; i < nfiles; i++ {
					os.WriteFile(filepath.Join(lower, string(rune('a'+i))), bytes.Repeat([]byte{byte('0' + i)}, 8192), 0o644)
				}
			})
			before := treeSums(t, lower)
			model := map[string][]byte{}
			for p := range before {
				b, _ := os.ReadFile(p)
				model[filepath.Base(p)] = b
			}
			seed := rand.Int63()
			rng := rand.New(rand.NewSource(seed))
			t.Logf("seed %d", seed)
			// Readers opened on the lower files first, and kept open across
			// the copy-ups below: the case that would write into a lower
			// file if a backing were shared.
			var open []*os.File
			for name := range model {
				f, err := os.Open(filepath.Join(merged, name))
				if err != nil {
					t.Fatal(err)
				}
				open = append(open, f)
			}
			defer func() {
				for _, f := range open {
					f.Close()
				}
			}()
			for step := 0; step < 400; step++ {
				fname := string(rune('a' + rng.Intn(nfiles)))
				p := filepath.Join(merged, fname)
				switch op := rng.Intn(7); op {
				case 0: // a reader that stays open across later copy-ups
					f, err := os.Open(p)
					if err != nil {
						t.Fatalf("step %d open ro %s: %v", step, fname, err)
					}
					open = append(open, f)
				case 1: // pwrite through a new writer
					f, err := os.OpenFile(p, os.O_RDWR, 0)
					if err != nil {
						t.Fatalf("step %d open rw %s: %v", step, fname, err)
					}
					off := rng.Intn(len(model[fname]) + 1)
					data := []byte{byte('A' + rng.Intn(26))}
					f.WriteAt(data, int64(off))
					m := model[fname]
					if off == len(m) {
						m = append(m, data...)
					} else {
						m[off] = data[0]
					}
					model[fname] = m
					open = append(open, f)
				case 2: // append
					f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
					if err != nil {
						t.Fatalf("step %d open append %s: %v", step, fname, err)
					}
					f.Write([]byte("+"))
					f.Close()
					model[fname] = append(model[fname], '+')
				case 3: // shared writable mmap (in a child: see childmmap_test.go)
					if size := len(model[fname]); size > 0 {
						i := rng.Intn(size)
						mmapWriteInChild(t, p, i, 'M')
						model[fname][i] = 'M'
					}
				case 4: // a copy-up that is not an open
					if err := os.Chmod(p, 0o600|os.FileMode(rng.Intn(2))<<2); err != nil {
						t.Fatalf("step %d chmod %s: %v", step, fname, err)
					}
				case 5: // truncate on open
					f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
					if err != nil {
						t.Fatalf("step %d open trunc %s: %v", step, fname, err)
					}
					f.Write([]byte("T"))
					f.Close()
					model[fname] = []byte("T")
				case 6: // close something
					if len(open) > 0 {
						i := rng.Intn(len(open))
						open[i].Close()
						open = append(open[:i], open[i+1:]...)
					}
				}
				got, err := os.ReadFile(p)
				if err != nil || !bytes.Equal(got, model[fname]) {
					t.Fatalf("seed %d step %d: %s reads %d bytes %.40q (%v), want %d bytes %.40q", seed, step, fname, len(got), got, err, len(model[fname]), model[fname])
				}
			}
			after := treeSums(t, lower)
			for p, sum := range before {
				if after[p] != sum {
					t.Errorf("seed %d: lower file %s changed", seed, p)
				}
			}
		})
	}
}
