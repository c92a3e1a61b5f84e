package cowcache

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/moby/go-archive"
	"github.com/unionfuse/unionfuse/internal/ovlfmt"
)

// Compression is how a layer tarball is compressed.
type Compression int

// The compressions a layer tarball may have.
const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

// String returns "tar", "gzip" or "zstd".
func (c Compression) String() string {
	return [...]string{"tar", "gzip", "zstd"}[c]
}

// EntryError is the refusal of one archive entry.
type EntryError struct {
	Entry string // the entry's name as the archive gives it
	Err   error
}

func (e *EntryError) Error() string { return fmt.Sprintf("entry %q: %v", e.Entry, e.Err) }

func (e *EntryError) Unwrap() error { return e.Err }

// Reasons an entry is refused (wrapped in an *EntryError).
var (
	ErrUnsafePath     = errors.New("path leaves the layer (absolute or ..)")
	ErrDuplicate      = errors.New("duplicate entry")
	ErrThroughSymlink = errors.New("written through a symbolic link of the archive")
	ErrLinkTarget     = errors.New("hard link to a file not earlier in the archive")
	ErrDevice         = errors.New("device node (only root may unpack devices)")
	ErrEntryType      = errors.New("unsupported entry type")
	ErrOverlayXattr   = errors.New("sets an overlay-private extended attribute")
	ErrWhiteoutName   = errors.New("invalid whiteout name")
)

// hashReader hashes and counts what is read through it.
type hashReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func newHashReader(r io.Reader) *hashReader { return &hashReader{r: r, h: sha256.New()} }

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

func (h *hashReader) digest() Digest { return Digest("sha256:" + hex.EncodeToString(h.h.Sum(nil))) }

// decompress detects gzip and zstd by their magic numbers and returns the
// uncompressed stream; anything else is read as a plain tarball.
func decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, Gzip, fmt.Errorf("gzip: %w", err)
		}
		return zr, Gzip, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		// A frame may ask for any window; 128 MiB covers zstd --long=27
		// and --ultra -22 and bounds what a hostile frame makes us allocate.
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, Zstd, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), Zstd, nil
	}
	return io.NopCloser(br), Uncompressed, nil
}

// Unpacked describes a tarball that was applied to a directory.
type Unpacked struct {
	Digest      Digest      // of the bytes as given (compressed or not)
	Size        int64       // how many bytes were given
	DiffID      Digest      // of the uncompressed tarball
	Compression Compression // as detected

	// filesSize is the bytes of the files unpacked, as DirSize counts
	// them, when sized: an unpack counts them as it writes, which spares
	// the commit a walk of the tree.
	filesSize int64
	sized     bool
}

// unpackOptions tune unpackLayer.
type unpackOptions struct {
	allowDevices bool // unpack device nodes (root only)
	noChown      bool // leave files owned by the caller
	// userXattr marks opaque directories with user.overlay.opaque instead
	// of trusted.overlay.opaque (see Store.UserXattr).
	userXattr bool
	// maxSize caps the uncompressed tarball (0: DefaultMaxLayerSize).
	maxSize int64
	// holes gives the regular files of a partial layer (by cleaned
	// name) their size, as a hole (see ApplyPartial).
	holes map[string]int64
}

// DefaultMaxLayerSize is the largest uncompressed layer tarball unpacked
// unless the store says otherwise (Store.MaxLayerSize): a few kilobytes
// of gzip or zstd can expand to terabytes, and the cap turns such a
// decompression bomb into an error instead of a full disk or hours of CPU.
const DefaultMaxLayerSize = 64 << 30

// maxTrailing is how much may follow a tarball's end-of-archive marker:
// tar(1) pads its output to a 10 KiB record, nothing pads to megabytes,
// and everything after the marker is decompressed without being written,
// which makes a long tail a pure CPU bomb.
const maxTrailing = 1 << 20

// maxZstdWindow is the largest zstd window accepted.
const maxZstdWindow = 128 << 20

// ErrTooLarge is returned (wrapped) for a layer that expands past its cap.
var ErrTooLarge = errors.New("layer too large")

// cappedReader fails with ErrTooLarge once more than max bytes are read.
type cappedReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, fmt.Errorf("%w: expands to more than %s uncompressed (a decompression bomb?)", ErrTooLarge, humanize.IBytes(uint64(c.max)))
	}
	return n, err
}

// unpackLayer applies the layer tarball r (plain, gzip or zstd) to the
// empty directory dir, converting OCI whiteouts to kernel overlay
// whiteouts. It refuses, with an *EntryError, every entry that could write
// outside dir or that the layer format does not allow, and reads the input
// to its end so that compression checksums are verified.
func unpackLayer(dir string, r io.Reader, opts unpackOptions) (Unpacked, error) {
	raw := newHashReader(r)
	dr, comp, err := decompress(raw)
	if err != nil {
		return Unpacked{}, err
	}
	defer dr.Close()
	if opts.maxSize <= 0 {
		opts.maxSize = DefaultMaxLayerSize
	}
	plain := newHashReader(&cappedReader{r: dr, max: opts.maxSize})
	tail := &tailReader{r: plain}
	filesSize, err := extractTree(dir, tarEntries{tar.NewReader(tail)}, opts)
	if err == nil && !tail.endMarker() {
		err = fmt.Errorf("read tarball: %w (no end-of-archive marker)", io.ErrUnexpectedEOF)
	}
	if err == nil {
		// The tar end may come before the end of the stream: read the rest
		// so that gzip's CRC and length (and the DiffID) cover everything.
		var n int64
		n, err = io.Copy(io.Discard, io.LimitReader(plain, maxTrailing+1))
		switch {
		case err != nil:
			err = fmt.Errorf("%s after the end of the tarball: %w", comp, err)
		case n > maxTrailing:
			err = fmt.Errorf("%w: more than %s after the end of the tarball", ErrTooLarge, humanize.IBytes(maxTrailing))
		}
	}
	if err != nil {
		return Unpacked{}, err
	}
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return Unpacked{}, fmt.Errorf("read layer: %w", err)
	}
	return Unpacked{Digest: raw.digest(), Size: raw.n, DiffID: plain.digest(), Compression: comp, filesSize: filesSize, sized: true}, nil
}

// Entries is a layer's tree entry by entry, as archive/tar's Reader
// gives a tarball: Next returns the next entry's header (io.EOF after
// the last) and Read reads that entry's content.
type Entries interface {
	Next() (*tar.Header, error)
	io.Reader
}

// tarEntries are the entries of a tarball, its read errors said to be so.
type tarEntries struct{ *tar.Reader }

func (t tarEntries) Next() (*tar.Header, error) {
	h, err := t.Reader.Next()
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("read tarball: %w", err)
	}
	return h, err
}

// extractTree makes tree's entries in the empty directory dir with the
// checks of filterEntries, then its whiteouts and its directories' modes
// and times. It returns the size of what it made, as DirSize counts it.
func extractTree(dir string, tree Entries, opts unpackOptions) (int64, error) {
	x, err := newExtractor(dir, opts)
	if err != nil {
		return 0, err
	}
	defer x.close()
	markers, err := filterEntries(tree, opts, x.entry)
	if err != nil {
		return 0, err
	}
	if err := applyMarkers(x, markers, ovlfmt.For(opts.userXattr).Opaque, !opts.noChown); err != nil {
		return 0, err
	}
	if err := x.finish(); err != nil {
		return 0, fmt.Errorf("unpack: %w", err)
	}
	return x.size, nil
}

// filterEntries checks tree entry by entry and passes each to
// apply (with its data), except for the OCI whiteout markers (.wh.NAME,
// .wh..wh..opq), which it returns for applyMarkers. It returns an
// *EntryError for the first entry that is not safe to unpack, or that
// apply fails to make:
//
//   - names that are absolute or contain "..";
//   - the same name twice (also a file and its whiteout);
//   - entries below a symbolic link the archive made earlier (they would be
//     written through it, possibly outside the layer);
//   - hard links whose target is not a non-directory earlier in the archive;
//   - device nodes unless opts.allowDevices; entry types other than files,
//     directories, links, devices and fifos;
//   - overlay-private xattrs (trusted.overlay.*, user.overlay.*), which
//     would change what the layer means to the overlay;
//   - AUFS metadata (.wh..wh.*) other than the opaque marker.
func filterEntries(tree Entries, opts unpackOptions, apply func(hdr *tar.Header, data io.Reader) error) ([]marker, error) {
	var markers []marker
	seen := map[string]byte{} // cleaned name -> typeflag
	for {
		hdr, err := tree.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := checkEntry(hdr, seen, opts)
		if err != nil {
			return nil, &EntryError{Entry: hdr.Name, Err: err}
		}
		if name == "" {
			continue // the root itself
		}
		if m, ok := markerOf(hdr, name); ok {
			markers = append(markers, m)
			continue
		}
		if err := apply(hdr, tree); err != nil {
			return nil, &EntryError{Entry: hdr.Name, Err: err}
		}
	}
	return markers, nil
}

// maxID is the largest uid or gid a file may have.
const maxID = 1<<32 - 2

// checkEntry validates one header, normalises its name in place and
// records it in seen. It returns the cleaned name ("" for the root).
func checkEntry(hdr *tar.Header, seen map[string]byte, opts unpackOptions) (string, error) {
	name, err := cleanName(hdr.Name)
	if err != nil || name == "" {
		return "", err
	}
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if seen[dir] == tar.TypeSymlink {
			return "", fmt.Errorf("%w %q", ErrThroughSymlink, dir)
		}
	}
	for _, part := range strings.Split(path.Dir(name), "/") {
		if ovlfmt.IsAufsName(part) {
			return "", fmt.Errorf("%w: in a directory name", ErrWhiteoutName)
		}
	}
	base := path.Base(name)
	key := name
	switch {
	case base == ovlfmt.AufsOpaque:
	case strings.HasPrefix(base, ovlfmt.AufsMetaPrefix):
		return "", fmt.Errorf("%w: AUFS metadata", ErrWhiteoutName)
	case ovlfmt.IsAufsName(base):
		target := strings.TrimPrefix(base, ovlfmt.AufsPrefix)
		if target == "" || target == "." || target == ".." || hdr.Typeflag != tar.TypeReg || hdr.Size != 0 {
			return "", ErrWhiteoutName
		}
		key = path.Join(path.Dir(name), target) // a whiteout and its name collide
	}
	if _, dup := seen[key]; dup {
		return "", ErrDuplicate
	}
	// chown(2) takes 32-bit ids, and -1 means "unchanged": a larger id
	// would be truncated (2^55 to 0, root).
	if hdr.Uid < 0 || hdr.Uid > maxID || hdr.Gid < 0 || hdr.Gid > maxID {
		return "", fmt.Errorf("uid %d, gid %d: ids go from 0 to %d", hdr.Uid, hdr.Gid, maxID)
	}
	typ := hdr.Typeflag
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeFifo:
	case tar.TypeChar, tar.TypeBlock:
		if !opts.allowDevices {
			return "", ErrDevice
		}
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return "", fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		t, ok := seen[target]
		if !ok || t == tar.TypeDir || ovlfmt.IsAufsName(path.Base(target)) {
			return "", fmt.Errorf("%w: %q", ErrLinkTarget, hdr.Linkname)
		}
		hdr.Linkname = target
		// A hard link is what it links to: a link to a symbolic link is
		// one too, and nothing may be written through it.
		typ = t
	default:
		return "", fmt.Errorf("%w %q", ErrEntryType, hdr.Typeflag)
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			// A few bytes of map can expand to terabytes of zeros.
			return "", fmt.Errorf("%w: sparse file", ErrEntryType)
		}
		x, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if ok && ovlfmt.IsPrivateXattr(x) {
			return "", fmt.Errorf("%w %q", ErrOverlayXattr, x)
		}
	}
	for x := range hdr.Xattrs { //nolint:staticcheck // old-style xattrs are still read
		if ovlfmt.IsPrivateXattr(x) {
			return "", fmt.Errorf("%w %q", ErrOverlayXattr, x)
		}
	}
	seen[key] = typ
	hdr.Name = name
	if hdr.Typeflag == tar.TypeDir {
		hdr.Name += "/"
	}
	return name, nil
}

// tailReader remembers the last two tar blocks read through it, to tell a
// tarball that ends with its end-of-archive marker (two zero blocks) from
// one that was cut at a block boundary, which archive/tar accepts.
type tailReader struct {
	r    io.Reader
	tail [2 * 512]byte
	n    int64
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	b := p[:n]
	if len(b) >= len(t.tail) {
		copy(t.tail[:], b[len(b)-len(t.tail):])
	} else {
		copy(t.tail[:], t.tail[len(b):])
		copy(t.tail[len(t.tail)-len(b):], b)
	}
	t.n += int64(n)
	return n, err
}

// endMarker reports whether the stream read so far ends with two zero blocks.
func (t *tailReader) endMarker() bool {
	return t.n >= int64(len(t.tail)) && bytes.Count(t.tail[:], []byte{0}) == len(t.tail)
}

// cleanName returns the entry name relative to the layer root ("" for the
// root itself), or ErrUnsafePath.
func cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) {
		return "", ErrUnsafePath
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", ErrUnsafePath
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// packLayer writes the directory dir (kernel overlay format) to w as an
// uncompressed OCI layer tarball: whiteouts become .wh.NAME files and
// opaque directories get a .wh..wh..opq entry. The output depends only on
// the directory's content, names, modes, owners, modification times and
// xattrs, so packing the same layer twice gives the same DiffID.
func packLayer(dir string, w io.Writer) error {
	rc, err := archive.TarWithOptions(dir, &archive.TarOptions{WhiteoutFormat: archive.OverlayWhiteoutFormat})
	if err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	return nil
}

// canMknod reports whether this process may create device nodes.
func canMknod() bool { return os.Geteuid() == 0 }
