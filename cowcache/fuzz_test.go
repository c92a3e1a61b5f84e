package cowcache

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/unionfuse/unionfuse/internal/testutil"
)

// The archive reader has two fuzz targets, with corpora in
// testdata/fuzz/ kept as regression tests (go test runs them).
//
// FuzzUnpackLayer takes a compact description of a tarball (see
// fuzzLayer): a few dozen bytes become entries with valid headers,
// compressed or not, maybe truncated or with one byte flipped. This is the
// one to run for a while:
//
//	go test -run '^$' -fuzz=FuzzUnpackLayer -fuzztime=60s ./cowcache
//
// FuzzUnpackRaw takes the bytes of the file as they are. It used to be
// the only target and stalled: a tarball is at least 1 KiB (a 512-byte
// header and the two zero blocks that end it), and each time the fuzzer
// finds an input with new coverage it minimizes it, trying every byte
// and then every span of bytes (quadratic) for up to -fuzzminimizetime,
// 60 s by default, reporting no executions meanwhile. Byte mutations of a
// tarball also mostly break a header checksum, so little new coverage is
// found in between. Run it with a short minimization:
//
//	go test -run '^$' -fuzz=FuzzUnpackRaw -fuzztime=60s -fuzzminimizetime=200x ./cowcache
func FuzzUnpackLayer(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x05a\x00\x00\x01\x05a/b\x00\x00\x02\x00a/c\x00../../etc\x00\x03\x00a/d\x00a/b\x00"))
	f.Add([]byte("\x01\x00\x00\x00.wh.x\x00\x00\x01\x00d\x00\x00\x00\x00d/.wh..wh..opq\x00"))
	f.Add([]byte("\x02\x00\x02\x00s\x00/\x00\x00\x03s/evil\x00"))
	f.Add([]byte("\x04\x80\x00\x10../evil\x00"))
	f.Add([]byte("\x00\x00\x04\x00dev\x00\x00\x0e\x01x\x00\x00\x1c\x00y\x00"))
	f.Fuzz(func(t *testing.T, data []byte) { checkUnpack(t, fuzzLayer(data)) })
}

// FuzzUnpackRaw feeds arbitrary bytes to the archive reader.
func FuzzUnpackRaw(f *testing.F) {
	f.Add(testutil.Tar(f, testutil.Spec("a/", "a/b=x", "a/c->../../etc", "a/d=>a/b")))
	f.Add(testutil.Gzip(testutil.Tar(f, testutil.Spec(".wh.x=", "d/", "d/.wh..wh..opq="))))
	f.Add([]byte{})
	f.Fuzz(checkUnpack)
}

// checkUnpack unpacks data: whatever it is, unpacking must not panic or
// hang, must not write outside its directory, and must either succeed or
// fail with nothing escaping.
func checkUnpack(t *testing.T, data []byte) {
	base := t.TempDir()
	dst := filepath.Join(base, "layer")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	done := make(chan struct{})
	go func() {
		_, err = unpackLayer(dst, bytes.NewReader(data), unpackOptions{noChown: true, maxSize: 64 << 20})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		panic("unpackLayer hangs")
	}
	var ee *EntryError
	if err != nil && errors.As(err, &ee) && ee.Entry == "" && !strings.Contains(err.Error(), "entry") {
		t.Errorf("entry error without an entry: %v", err)
	}
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		if e.Name() != "layer" {
			t.Fatalf("unpacking wrote %s outside the layer (err %v)", e.Name(), err)
		}
	}
}

// fuzzTypes are the entry types fuzzLayer draws from.
var fuzzTypes = []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar,
	tar.TypeBlock, tar.TypeFifo, tar.TypeCont, tar.TypeGNUSparse, 'Z'}

// fuzzPAX are the PAX records fuzzLayer may give an entry.
var fuzzPAX = []map[string]string{nil,
	{"SCHILY.xattr.user.overlay.opaque": "y"},
	{"SCHILY.xattr.trusted.overlay.whiteout": ""},
	{"SCHILY.xattr.user.x": "1"},
	{"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "s", "GNU.sparse.realsize": "999999999"},
}

// fuzzLayer turns a compact description into a layer tarball:
//
//	flags pos entry...
//
// flags: bits 0-1 compression (0 and 3 none, 1 gzip, 2 zstd), bit 2 cut
// the result at pos/256 of its length, bit 3 flip the byte there.
// Each entry is: kind (type = fuzzTypes[kind%10], PAX = fuzzPAX[kind/10%5]),
// size-and-mode (size = b%32 bytes of body, mode = b<<3), the name up to a
// NUL, the link target up to a NUL.
func fuzzLayer(data []byte) []byte {
	if len(data) < 2 {
		return data
	}
	flags, pos := data[0], int(data[1])
	rest := data[2:]
	field := func() string {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			i = len(rest)
		}
		s := string(rest[:i])
		rest = rest[min(i+1, len(rest)):]
		return s
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for len(rest) >= 2 {
		kind, sm := rest[0], rest[1]
		rest = rest[2:]
		h := &tar.Header{Typeflag: fuzzTypes[int(kind)%len(fuzzTypes)], Name: field(), Linkname: field(),
			Mode: int64(sm) << 3, PAXRecords: fuzzPAX[int(kind)/len(fuzzTypes)%len(fuzzPAX)], Devmajor: int64(sm & 1)}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(sm % 32)
		}
		if tw.WriteHeader(h) != nil {
			continue
		}
		tw.Write(bytes.Repeat([]byte{'x'}, int(h.Size)))
	}
	tw.Close()
	out := buf.Bytes()
	switch flags & 3 {
	case 1:
		out = testutil.Gzip(out)
	case 2:
		enc, _ := zstd.NewWriter(nil)
		out = enc.EncodeAll(out, nil)
	}
	at := pos * len(out) / 256
	if flags&8 != 0 && at < len(out) {
		out[at] ^= 0xff
	}
	if flags&4 != 0 {
		out = out[:at]
	}
	return out
}
