package cowcache

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/unionfuse/unionfuse/internal/dirwalk"
	"github.com/unionfuse/unionfuse/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// UpperCommit describes a new image made from a base image by CommitUpper:
// a build step, or a container committed by `unionfuse commit`.
type UpperCommit struct {
	// UpperDir is an overlay upper directory (kernel format) that becomes
	// the new image's top layer; "" adds no layer (a step that changed
	// only the config).
	UpperDir string
	// Config replaces the base's runtime config (Env, Cmd, ...); nil keeps
	// it.
	Config *v1.Config
	// History describes the step (CREATED BY, COMMENT). Its Created
	// defaults to now; EmptyLayer is set when UpperDir is "".
	History v1.History
	// Name names the new image (REPOSITORY[:TAG]); "" leaves it dangling.
	Name string
	// Move lets the store take UpperDir itself as the new layer's files,
	// by a rename, instead of copying them, when it is on the store's
	// filesystem: the caller gives the directory up (a build step's
	// container, removed after the commit). Nothing may use it any more:
	// no mount, no daemon serving it, no process writing in it. After the
	// call it is gone, or as it was when it could not be moved or was
	// refused before it was moved; an error after the move drops it.
	Move bool
}

// CommitUpper makes a new image from base (nil for an empty image) and,
// when c.UpperDir is set, one more layer made from that overlay upper
// directory: character devices 0/0 and files with an overlay whiteout
// xattr become .wh.NAME entries, opaque directories get a .wh..wh..opq
// entry, overlay-private xattrs are left out, hard links stay hard links,
// and entries come in a fixed order with their times as on disk, so the
// same directory always gives the same DiffID. The upper directory is only
// read, unless c.Move lets it become the layer; the caller removes what is
// left. The image is added as AppendLayer and AddImage add theirs: all of
// it or nothing.
func (s *Store) CommitUpper(base *Image, c UpperCommit) (Image, error) {
	img, err := s.commitUpper(base, c)
	if err != nil {
		return Image{}, storageError(s.root, fmt.Errorf("commit: %w", err))
	}
	return img, nil
}

func (s *Store) commitUpper(base *Image, c UpperCommit) (Image, error) {
	d, err := s.derive(base, c.Name)
	if err != nil {
		return Image{}, err
	}
	names, cfg, m, layers, parent := d.names, d.cfg, d.m, d.layers, d.parent
	if c.Config != nil {
		cfg.Config = *c.Config
	}
	step := c.History
	if step.Created.IsZero() {
		step.Created = v1.Time{Time: time.Now().UTC().Truncate(time.Second)}
	}
	step.EmptyLayer = c.UpperDir == ""
	cfg.Created = step.Created
	cfg.History = append(cfg.History, step)
	if c.UpperDir != "" {
		var lowers []string // where metacopy files find their data
		if base != nil {
			lowers = s.LayerDirs(*base)
		}
		p, u, err := s.layerFromUpper(parent, c, lowers)
		if err != nil {
			return Image{}, err
		}
		defer p.Abort()
		diffHash, _ := v1.NewHash(string(u.DiffID))
		layerHash, _ := v1.NewHash(string(u.Digest))
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffHash)
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: layerMediaType(u.Compression), Size: u.Size, Digest: layerHash})
		layers = append(layers, p)
	}
	rawCfg, err := json.Marshal(cfg)
	if err != nil {
		return Image{}, err
	}
	cfgHash, _ := v1.NewHash(string(FromBytes(rawCfg)))
	m.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(rawCfg)), Digest: cfgHash}
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return Image{}, err
	}
	return s.AddImage(NewImage{RawConfig: rawCfg, RawManifest: rawManifest, Layers: layers, Names: names})
}

// layerFromUpper prepares a layer on parent from the upper directory of c:
// by moving it when c.Move allows and it is on the store's filesystem
// (moveupper.go), else by copying it.
func (s *Store) layerFromUpper(parent Digest, c UpperCommit, lowers []string) (*Pending, Unpacked, error) {
	p, err := s.Prepare(parent)
	if err != nil {
		return nil, Unpacked{}, err
	}
	if c.Move {
		u, err := p.moveUpper(c.UpperDir, s.UserXattr(), lowers)
		if err == nil {
			return p, u, nil
		}
		p.Abort()
		if !errors.Is(err, errCannotMove) {
			return nil, Unpacked{}, err
		}
		if p, err = s.Prepare(parent); err != nil {
			return nil, Unpacked{}, err
		}
	}
	u, err := applyUpper(p, c.UpperDir, s.UserXattr(), lowers)
	if err != nil {
		p.Abort()
		return nil, Unpacked{}, err
	}
	return p, u, nil
}

// applyUpper streams the OCI tarball of the upper directory dir into the
// pending layer p.
func applyUpper(p *Pending, dir string, userXattr bool, lowers []string) (Unpacked, error) {
	if fi, err := os.Stat(dir); err != nil {
		return Unpacked{}, fmt.Errorf("upper directory: %w", err)
	} else if !fi.IsDir() {
		return Unpacked{}, fmt.Errorf("upper directory %s: not a directory", dir)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := WriteUpperTar(pw, dir, lowers...)
		pw.CloseWithError(err)
		done <- err
	}()
	u, err := p.ApplyTar(pr)
	pr.CloseWithError(errUnpackStopped)
	// The first cause: a writer stopped by the unpacker reports only that.
	if werr := <-done; werr != nil && (err == nil || !errors.Is(werr, errUnpackStopped)) {
		return Unpacked{}, werr
	}
	if err != nil {
		return Unpacked{}, err
	}
	return u, nil
}

// errUnpackStopped is what packing an upper ends with when the unpacking
// of the tarball stopped first (with its own error).
var errUnpackStopped = errors.New("unpack stopped")

// WriteUpperTar writes the overlay upper directory dir to w as an
// uncompressed OCI layer tarball (see CommitUpper for the conversion).
// Entries are in lexical order of their paths, each directory before what
// it holds; names are relative ("etc/", "etc/hosts"); owners are numeric.
// Without root, the caller's own uid and gid are recorded as 0: they are
// root in the user namespace of the rootless container that wrote dir.
// Metacopy files (overlay metacopy=on) are written with their data, read
// from lowers, the layers below dir, top first (metacopy.go).
func WriteUpperTar(w io.Writer, dir string, lowers ...string) error {
	return writeUpperTar(w, dir, lowers, nil)
}

// writeUpperTar is WriteUpperTar; seen, when not nil, is told each entry
// written and its xattrs (moveupper.go plans the conversion of the
// directory in place from them).
func writeUpperTar(w io.Writer, dir string, lowers []string, seen func(e *dirwalk.Entry, xattrs map[string]string) error) error {
	tw := &upperWriter{Writer: tar.NewWriter(w), rootless: os.Geteuid() != 0, uid: os.Geteuid(), gid: os.Getegid(), upper: dir, lowers: lowers}
	links := map[[2]uint64]string{} // (dev, ino) -> first name, for hard links
	// Through directory descriptors: an upper may hold a tree deeper
	// than PATH_MAX.
	err := dirwalk.Walk(dir, func(e *dirwalk.Entry) error {
		xattrs, err := writeUpperEntry(tw, e, links)
		if err == nil && seen != nil {
			err = seen(e, xattrs)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("pack upper directory %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pack upper directory %s: %w", dir, err)
	}
	return nil
}

// writeUpperEntry writes the tar entries of one file of an upper directory
// and returns the file's xattrs.
func writeUpperEntry(tw *upperWriter, e *dirwalk.Entry, links map[[2]uint64]string) (map[string]string, error) {
	if ovlfmt.IsAufsName(e.Name) {
		// As docker: a layer's readers would take it for a whiteout or
		// metadata, and hide the user's files with it.
		return nil, fmt.Errorf("/%s: a file whose name starts with %q cannot go into a layer (it would be read as a whiteout)", e.Path, ovlfmt.AufsPrefix)
	}
	xattrs, err := listXattrs(e.ProcPath(), e.Path)
	if err != nil {
		return nil, err
	}
	return xattrs, writeUpperFile(tw, e, xattrs, links)
}

// writeUpperFile writes the tar entries of one file of an upper directory
// whose xattrs are listed.
func writeUpperFile(tw *upperWriter, e *dirwalk.Entry, xattrs map[string]string, links map[[2]uint64]string) error {
	name := e.Path
	st := &e.Stat
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(e.Stat.Mtim.Unix()),
		Format:  tar.FormatPAX,
	}
	whiteout := false
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
		_, wt := xattrs[ovlfmt.Trusted.Whiteout]
		_, wu := xattrs[ovlfmt.User.Whiteout]
		whiteout = ovlfmt.MayBeXattrWhiteout(st) && (wt || wu)
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		target, err := e.Readlink()
		if err != nil {
			return err
		}
		hdr.Linkname = target
	case unix.S_IFCHR:
		hdr.Typeflag = tar.TypeChar
		whiteout = ovlfmt.IsWhiteout(st)
	case unix.S_IFBLK:
		hdr.Typeflag = tar.TypeBlock
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil // sockets do not go into layers
	}
	if whiteout {
		dir, base := path.Split(name)
		wh := &tar.Header{Name: dir + ovlfmt.AufsWhiteout(base), Typeflag: tar.TypeReg, Mode: 0o600,
			Uid: hdr.Uid, Gid: hdr.Gid, ModTime: hdr.ModTime, Format: tar.FormatPAX}
		return tw.WriteHeader(wh)
	}
	if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	}
	opaque := false
	for _, k := range sortedKeys(xattrs) {
		if ovlfmt.IsPrivateXattr(k) {
			if hdr.Typeflag == tar.TypeDir && (k == ovlfmt.Trusted.Opaque || k == ovlfmt.User.Opaque) && xattrs[k] == ovlfmt.Yes {
				opaque = true
			}
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+k] = xattrs[k]
	}
	if hdr.Typeflag != tar.TypeDir && st.Nlink > 1 {
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := links[key]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			return tw.WriteHeader(hdr)
		}
		links[key] = name
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
		open := func() (io.ReadCloser, error) { return openRaw(e) }
		if st.Blocks*512 < st.Size && isMetacopy(e.ProcPath()) {
			open = func() (io.ReadCloser, error) { return metacopyData(tw.upper, name, tw.lowers) }
		}
		f, err := open()
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if opaque {
		opq := &tar.Header{Name: name + "/" + ovlfmt.AufsOpaque, Typeflag: tar.TypeReg, Mode: hdr.Mode & 0o777,
			Uid: hdr.Uid, Gid: hdr.Gid, ModTime: hdr.ModTime, Format: tar.FormatPAX}
		return tw.WriteHeader(opq)
	}
	return nil
}

// rawFile reads a file through its descriptor alone. An *os.File of a
// descriptor opened O_NONBLOCK (dirwalk's Open, safe against a fifo
// swapped in) would try to join the runtime's poller: three more system
// calls a file, which an upper of many small files feels.
type rawFile int

// openRaw opens the regular file e for reading, not following a symbolic
// link.
func openRaw(e *dirwalk.Entry) (rawFile, error) {
	fd, err := unix.Openat(e.Dir, e.Name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: e.Path, Err: err}
	}
	return rawFile(fd), nil
}

func (f rawFile) Read(b []byte) (int, error) {
	for {
		n, err := unix.Read(int(f), b)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(b) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f rawFile) Close() error { return unix.Close(int(f)) }

// upperWriter writes the entries of an upper directory, mapping the
// rootless caller to root.
type upperWriter struct {
	*tar.Writer
	rootless bool
	uid, gid int
	// upper is the directory written, lowers the layers below it.
	upper  string
	lowers []string
}

// WriteHeader writes hdr with the caller's ids as 0 when rootless.
func (w *upperWriter) WriteHeader(hdr *tar.Header) error {
	if w.rootless {
		if hdr.Uid == w.uid {
			hdr.Uid = 0
		}
		if hdr.Gid == w.gid {
			hdr.Gid = 0
		}
	}
	return w.Writer.WriteHeader(hdr)
}

// listXattrs returns the extended attributes of p (not following a
// symbolic link), named name in errors. A filesystem without xattrs has
// none.
func listXattrs(p, name string) (map[string]string, error) {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, &os.PathError{Op: "listxattr", Path: name, Err: err}
		}
		buf = buf[:n]
		break
	}
	out := map[string]string{}
	for _, k := range strings.Split(string(buf), "\x00") {
		if k == "" {
			continue
		}
		v, err := getXattr(p, k)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, &os.PathError{Op: "getxattr " + k, Path: name, Err: err}
		}
		out[k] = v
	}
	return out, nil
}

func getXattr(p, k string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, k, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
