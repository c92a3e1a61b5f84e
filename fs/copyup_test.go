package fs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// dataExtents lists the [start, end) data ranges of a file.
func dataExtents(t *testing.T, path string) [][2]int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	var out [][2]int64
	for off := int64(0); off < fi.Size(); {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			break
		}
		hole, _ := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		out = append(out, [2]int64{data, hole})
		off = hole
	}
	return out
}

func TestCopyDataKeepsHoles(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	const mb = 1 << 20
	f.WriteAt(bytes.Repeat([]byte("a"), mb), 0)
	f.WriteAt(bytes.Repeat([]byte("b"), mb), 8*mb)
	f.Truncate(16 * mb)
	f.Close()

	in, _ := unix.Open(src, unix.O_RDONLY, 0)
	defer unix.Close(in)
	dst := filepath.Join(dir, "dst")
	out, err := unix.Open(dst, unix.O_WRONLY|unix.O_CREAT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := copyData(in, out, 16*mb); err != nil {
		t.Fatal(err)
	}
	unix.Ftruncate(out, 16*mb)
	unix.Close(out)

	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	if !bytes.Equal(a, b) {
		t.Fatal("copy differs from source")
	}
	want, got := dataExtents(t, src), dataExtents(t, dst)
	if len(got) != len(want) {
		t.Fatalf("data extents %v, want %v (holes not kept)", got, want)
	}
	var st unix.Stat_t
	unix.Stat(dst, &st)
	if st.Blocks*512 > 4*mb {
		t.Errorf("copy allocates %d bytes for 2 MiB of data", st.Blocks*512)
	}
}
