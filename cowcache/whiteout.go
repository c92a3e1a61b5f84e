package cowcache

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/unionfuse/unionfuse/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// marker is an OCI whiteout marker taken out of a layer tarball, to be
// made in the kernel's format once the rest of the tarball is unpacked.
type marker struct {
	entry    string // the tarball's entry, for errors
	path     string // the name to hide, or the directory to make opaque
	opaque   bool
	uid, gid int
}

// markerOf returns the marker that the checked header hdr (named name,
// cleaned) stands for, if it is one.
func markerOf(hdr *tar.Header, name string) (marker, bool) {
	dir, base := path.Split(name)
	m := marker{entry: hdr.Name, uid: hdr.Uid, gid: hdr.Gid}
	switch {
	case base == ovlfmt.AufsOpaque:
		m.path, m.opaque = path.Clean("./"+dir), true
	case ovlfmt.IsAufsName(base):
		m.path = path.Join(dir, strings.TrimPrefix(base, ovlfmt.AufsPrefix))
	default:
		return marker{}, false
	}
	return m, true
}

// applyMarkers makes, below the extractor's root, a character device 0/0
// for each whiteout and sets the opaque attribute (xattr) to "y" on each
// opaque directory, creating missing parent directories as tar(1) does.
// The unprivileged may make whiteouts too (Linux 5.8+). Directories are
// resolved as the extractor resolves them, one component at a time
// without following symbolic links, so a link the tarball made cannot
// lead a marker outside the layer. Parent directories keep their times;
// with chown, whiteouts get their entry's owner.
func applyMarkers(x *extractor, markers []marker, xattr string, chown bool) error {
	for _, m := range markers {
		if len(x.dirs) >= maxOpenDirs {
			x.forget()
		}
		if err := applyMarker(x, m, xattr, chown); err != nil {
			return &EntryError{Entry: m.entry, Err: err}
		}
	}
	return nil
}

func applyMarker(x *extractor, m marker, xattr string, chown bool) error {
	if m.opaque {
		fd, err := x.dir(m.path)
		if err != nil {
			return fmt.Errorf("opaque directory %s: %w", m.path, err)
		}
		if err := unix.Fsetxattr(fd, xattr, []byte(ovlfmt.Yes), 0); err != nil {
			return fmt.Errorf("opaque directory %s: set %s: %w", m.path, xattr, err)
		}
		return nil
	}
	parent, err := x.dir(path.Dir(m.path))
	if err != nil {
		return fmt.Errorf("whiteout %s: %w", m.path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(parent, &st); err != nil {
		return fmt.Errorf("whiteout %s: %w", m.path, err)
	}
	base := path.Base(m.path)
	if err := ovlfmt.MakeWhiteout(parent, base); err != nil {
		return fmt.Errorf("whiteout %s: mknod (char 0/0): %w", m.path, err)
	}
	if chown && (m.uid != 0 || m.gid != 0) {
		if err := unix.Fchownat(parent, base, m.uid, m.gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("whiteout %s: chown: %w", m.path, err)
		}
	}
	if err := futimens(parent, st.Atim, st.Mtim); err != nil {
		return fmt.Errorf("whiteout %s: restore the times of its directory: %w", m.path, err)
	}
	return nil
}

// wrapOpen names rel in an error of an open below a layer; ELOOP (or
// EXDEV, from openat2) means a symbolic link.
func wrapOpen(rel string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
		return fmt.Errorf("%w %q", ErrThroughSymlink, rel)
	}
	return &os.PathError{Op: "open", Path: rel, Err: err}
}

// UserXattr reports whether the store's layers mark opaque directories
// with user.overlay.opaque (the kernel's -o userxattr) rather than
// trusted.overlay.opaque: true when this process may not set trusted.*
// attributes in the store (anyone but root outside a user namespace),
// which is also when the filesystem picks userxattr by itself. A mount of
// the store's layers must be told (fs.Config.UserXattr). The answer is
// found once per Store, with a probe file in tmp/.
func (s *Store) UserXattr() bool {
	if s.userXattr == nil {
		user := s.probeUserXattr()
		s.userXattr = &user
	}
	return *s.userXattr
}

// probeUserXattr sets trusted.overlay.probe on a temporary file; when
// that is not permitted and user.overlay.probe is, the store is userxattr.
func (s *Store) probeUserXattr() bool {
	f, done, err := s.tempFile("probe extended attributes")
	if err != nil {
		return os.Geteuid() != 0
	}
	defer done()
	x, _ := ovlfmt.ProbeNamespace(int(f.Fd()))
	return x == ovlfmt.User
}
