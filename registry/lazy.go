package registry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	"github.com/unionfuse/unionfuse/cowcache"
	"golang.org/x/sys/unix"
)

// Lazy pulls (issue 19). A layer whose descriptor names an eStargz TOC
// is not downloaded: the pull reads the blob's footer and its TOC (two
// range requests), checks the TOC against the manifest's annotation,
// and commits a partial layer (cowcache's partial.go): the tree the TOC
// describes, with every regular file at its size and no data. The union
// fetches file data when it is first read (lazylayer.go); CompleteLayer
// fetches the rest and makes it a normal layer.

// maxTOCTail limits the footer + TOC a pull reads from a registry.
const maxTOCTail = 64 << 20

// maxChunk limits a chunk's size, compressed or not, as the TOC gives it:
// each is held in memory while it is checked (estargz writes 4 MiB).
const maxChunk = 64 << 20

// source is what partial/source.json records: where a partial layer's
// blob is, and how to reach it (the parts of Options that can be kept).
type source struct {
	Repository         string   `json:"repository"`
	Digest             string   `json:"digest"`
	Size               int64    `json:"size"`
	TOCOffset          int64    `json:"toc_offset"`
	TOCDigest          string   `json:"toc_digest"`
	Insecure           bool     `json:"insecure,omitempty"`
	Verify             bool     `json:"verify,omitempty"`
	InsecureRegistries []string `json:"insecure_registries,omitempty"`
	CertDir            string   `json:"cert_dir,omitempty"`
	AuthFile           string   `json:"auth_file,omitempty"`
}

// options returns the Options src was pulled with.
func (src *source) options() Options {
	return Options{Insecure: src.Insecure, Verify: src.Verify, InsecureRegistries: src.InsecureRegistries,
		CertDir: src.CertDir, AuthFile: src.AuthFile}
}

// Names of the files of partial/ (beside cowcache's own).
const (
	sourceFile   = "source.json"
	tailFile     = "tail"     // the blob from the TOC on: TOC and footer
	chunksFile   = "chunks"   // the chunks that are local, one a line
	blobCopyFile = "blobcopy" // the compressed blob as far as fetched (blobcopy.go)
)

// blobCopyMade is the line of the chunk log that says the blob copy was
// made (again) then: the chunks recorded before it are not in it.
const blobCopyMade = "blobcopy made"

// pullLazy prepares layer l (DiffID diffID, on parent) as a partial
// layer from its TOC.
func pullLazy(ctx context.Context, s *cowcache.Store, f *fetcher, l v1.Descriptor, parent, diffID cowcache.Digest) (*cowcache.Pending, error) {
	id := shortID(l.Digest.String())
	br, err := newBlobRange(ctx, f.o, f.repo, l.Digest.String(), l.Size)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", id, err)
	}
	src := &source{Repository: f.repo.String(), Digest: l.Digest.String(), Size: l.Size,
		TOCDigest: l.Annotations[estargz.TOCJSONDigestAnnotation], Insecure: f.o.Insecure, Verify: f.o.Verify,
		InsecureRegistries: f.o.InsecureRegistries, CertDir: f.o.CertDir, AuthFile: f.o.AuthFile}
	if src.TOCOffset, _, err = estargz.OpenFooter(io.NewSectionReader(br, 0, l.Size)); err != nil {
		return nil, fmt.Errorf("layer %s: eStargz footer: %w", id, err)
	}
	if src.TOCOffset <= 0 || l.Size-src.TOCOffset > maxTOCTail {
		return nil, fmt.Errorf("layer %s: eStargz TOC at %d of %d bytes", id, src.TOCOffset, l.Size)
	}
	tail := make([]byte, l.Size-src.TOCOffset)
	if _, err := br.readAt(ctx, tail, src.TOCOffset); err != nil {
		return nil, fmt.Errorf("layer %s: eStargz TOC: %w", id, err)
	}
	toc, err := readTOC(src, tail)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", id, err)
	}
	if err := checkSizes(toc, s.MaxLayerSize); err != nil {
		return nil, fmt.Errorf("layer %s: %w", id, err)
	}
	srcJSON, err := json.Marshal(src)
	if err != nil {
		return nil, err
	}
	p, err := s.Prepare(parent)
	if err != nil {
		return nil, err
	}
	u := cowcache.Unpacked{Digest: cowcache.Digest(l.Digest.String()), Size: l.Size, DiffID: diffID, Compression: cowcache.Gzip}
	err = p.ApplyPartial(u, newTOCTree(toc), tocSizes(toc), map[string][]byte{sourceFile: srcJSON, tailFile: tail})
	if err == nil {
		err = p.Finish()
	}
	if err != nil {
		p.Abort()
		return nil, fmt.Errorf("layer %s: %w", id, err)
	}
	return p, nil
}

// layerTOC is a layer's TOC as it was read: its entries in blob order
// and its JSON, and, once opened for reading chunks (openTOC), parsed by
// estargz as well (lookups, chunk entries, verifiers).
type layerTOC struct {
	entries  []*estargz.TOCEntry
	json     []byte
	r        *estargz.Reader
	verifier estargz.TOCEntryVerifier
}

// readTOC takes the TOC's JSON from the footer + TOC tail of src's blob,
// checks it against the digest the manifest gives and decodes its
// entries: all a pull needs.
func readTOC(src *source, tail []byte) (*layerTOC, error) {
	want, err := digest.Parse(src.TOCDigest)
	if err != nil {
		return nil, fmt.Errorf("eStargz TOC digest %q: %w", src.TOCDigest, err)
	}
	raw, err := tocJSON(tail)
	if err != nil {
		return nil, err
	}
	if digest.FromBytes(raw) != want {
		return nil, fmt.Errorf("eStargz TOC: %w: digest %s, the manifest says %s", cowcache.ErrDigestMismatch, digest.FromBytes(raw), want)
	}
	var jtoc estargz.JTOC
	if err := json.Unmarshal(raw, &jtoc); err != nil {
		return nil, fmt.Errorf("eStargz TOC: %w", err)
	}
	return &layerTOC{entries: jtoc.Entries, json: raw}, nil
}

// openTOC reads the TOC as readTOC does and also parses it with estargz,
// for reading chunks. (estargz decodes the JSON once more: its Reader
// cannot be made from decoded entries.)
func openTOC(src *source, tail []byte) (*layerTOC, error) {
	toc, err := readTOC(src, tail)
	if err != nil {
		return nil, err
	}
	ra := &tailReader{tail: tail, off: src.TOCOffset}
	if toc.r, err = estargz.Open(io.NewSectionReader(ra, 0, src.Size), estargz.WithTOCOffset(src.TOCOffset)); err != nil {
		return nil, fmt.Errorf("eStargz TOC: %w", err)
	}
	if toc.verifier, err = toc.r.VerifyTOC(digest.Digest(src.TOCDigest)); err != nil {
		return nil, fmt.Errorf("eStargz TOC: %w", err)
	}
	return toc, nil
}

// tocJSON returns the TOC's JSON from the tail: a gzip member holding a
// tarball of one file, stargz.index.json, then the footer.
func tocJSON(tail []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tail))
	if err != nil {
		return nil, fmt.Errorf("eStargz TOC: %w", err)
	}
	zr.Multistream(false)
	tr := tar.NewReader(zr)
	h, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("eStargz TOC: %w", err)
	}
	if h.Name != estargz.TOCTarName {
		return nil, fmt.Errorf("eStargz TOC: the tail holds %q", h.Name)
	}
	if h.Size < 0 || h.Size > maxTOCTail {
		return nil, fmt.Errorf("eStargz TOC: %d bytes", h.Size)
	}
	b := make([]byte, h.Size)
	if _, err := io.ReadFull(tr, b); err != nil {
		return nil, fmt.Errorf("eStargz TOC: %w", err)
	}
	return b, nil
}

// checkSizes refuses a TOC whose files add up to more than max bytes
// (0: cowcache.DefaultMaxLayerSize), as an unpack would, or whose chunks
// are larger than maxChunk: sparse files cost nothing to make, but their
// size is what every later reader believes.
func checkSizes(toc *layerTOC, max int64) error {
	if max <= 0 {
		max = cowcache.DefaultMaxLayerSize
	}
	var total int64
	for _, e := range toc.entries {
		if e.Size < 0 || e.ChunkSize < 0 || e.ChunkSize > maxChunk || (e.Type == "reg" && e.ChunkSize == 0 && e.Size > maxChunk) {
			return fmt.Errorf("eStargz TOC: %s: chunks of more than %d bytes", tocName(e.Name), maxChunk)
		}
		if e.Type == "reg" {
			if total += e.Size; total > max {
				return fmt.Errorf("%w: its files add up to more than %d bytes", cowcache.ErrTooLarge, max)
			}
		}
	}
	return nil
}

// tailReader is the blob as far as a partial layer keeps it: its tail.
type tailReader struct {
	tail []byte
	off  int64
}

func (t *tailReader) ReadAt(p []byte, off int64) (int, error) {
	if off < t.off || off-t.off > int64(len(t.tail)) {
		return 0, fmt.Errorf("read at %d: only the TOC is local", off)
	}
	n := copy(p, t.tail[off-t.off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// tocName cleans a TOC entry's name as estargz does: relative to the
// root, "" for the root itself.
func tocName(n string) string { return path.Clean("/" + n)[1:] }

// tocTree gives the tree the TOC describes entry by entry, as a tarball
// of the blob would (cowcache.Entries): its regular files without
// content, then stargz.index.json with the TOC as the blob has it. Made
// into a layer, it is what a full unpack of the blob gives, less file
// data.
type tocTree struct {
	toc     *layerTOC
	next    int       // the next entry of toc.entries
	content io.Reader // the current entry's
}

func newTOCTree(toc *layerTOC) *tocTree { return &tocTree{toc: toc, content: eof{}} }

// Next returns the next entry's header, or io.EOF after stargz.index.json.
func (t *tocTree) Next() (*tar.Header, error) {
	t.content = eof{}
	for t.next < len(t.toc.entries) {
		e := t.toc.entries[t.next]
		t.next++
		if name := tocName(e.Name); e.Type != "chunk" && name != "" {
			return tocHeader(e, name)
		}
	}
	if t.next == len(t.toc.entries) {
		t.next++
		t.content = bytes.NewReader(t.toc.json)
		return &tar.Header{Typeflag: tar.TypeReg, Name: estargz.TOCTarName, Size: int64(len(t.toc.json))}, nil
	}
	return nil, io.EOF
}

// Read reads the current entry's content.
func (t *tocTree) Read(p []byte) (int, error) { return t.content.Read(p) }

// eof is an empty content.
type eof struct{}

func (eof) Read([]byte) (int, error) { return 0, io.EOF }

// tocTypes are the tar types of the TOC's entry types ("chunk" entries
// continue a file).
var tocTypes = map[string]byte{
	"dir": tar.TypeDir, "reg": tar.TypeReg, "symlink": tar.TypeSymlink, "hardlink": tar.TypeLink,
	"char": tar.TypeChar, "block": tar.TypeBlock, "fifo": tar.TypeFifo,
}

// tocHeader is the tar header of the TOC entry e, named name.
func tocHeader(e *estargz.TOCEntry, name string) (*tar.Header, error) {
	h := &tar.Header{Name: name, Mode: e.Mode, Uid: e.UID, Gid: e.GID, Uname: e.Uname, Gname: e.Gname,
		Linkname: e.LinkName, Devmajor: int64(e.DevMajor), Devminor: int64(e.DevMinor)}
	if e.ModTime3339 != "" {
		t, err := time.Parse(time.RFC3339, e.ModTime3339)
		if err != nil {
			return nil, fmt.Errorf("eStargz TOC: %s: %w", name, err)
		}
		h.ModTime = t
	}
	typ, ok := tocTypes[e.Type]
	if !ok {
		return nil, fmt.Errorf("eStargz TOC: %s: entry type %q", name, e.Type)
	}
	h.Typeflag = typ
	if typ == tar.TypeLink {
		h.Linkname = tocName(e.LinkName)
	}
	for k, v := range e.Xattrs {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+k] = string(v)
	}
	return h, nil
}

// tocSizes gives each regular file of the TOC its size, by cleaned name.
func tocSizes(toc *layerTOC) map[string]int64 {
	sizes := map[string]int64{}
	for _, e := range toc.entries {
		if e.Type == "reg" && e.Size > 0 {
			sizes[tocName(e.Name)] = e.Size
		}
	}
	return sizes
}

// openBeneath opens name below the directory dfd, following no symbolic
// link and never leaving it.
func openBeneath(dfd int, name string, flags int) (int, error) {
	return unix.Openat2(dfd, name, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_NOFOLLOW | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	})
}

// repoOf parses a source's repository.
func repoOf(src *source) (name.Repository, error) {
	o := src.options()
	reg, _, _ := strings.Cut(src.Repository, "/")
	return name.NewRepository(src.Repository, o.nameOptions(reg)...)
}
