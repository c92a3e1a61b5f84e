package fs

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Hard links of lower files across copy-up (index=on), as the kernel's
// overlay keeps them with index=on.
//
// Without it, copying up one name of a hard-linked lower file makes a new
// file: the other names keep the old content. With it, the copy is made
// once, into the index (WORK/index, named by the hex of the lower file's
// handle, the overlay.origin value), and each name that is copied up
// becomes a hard link to it; names still only in a lower layer read the
// index entry. The link count the union shows is kept on the copy as
// overlay.nlink = "U±N": the upper inode's own count (which includes the
// index entry) plus N. The last name removed removes the index entry.
//
// The kernel's rules are followed to the byte: the upper root records the
// lower root as its origin and WORK/index records the upper root
// (overlay.upper), and a mount refuses an upper or work directory that was
// used with other layers.
//
// Nodes stay as without the index: each lower name of a hard-linked file
// is a node of its own (keyOf), so that a change through one name copies
// up that name; such a node reads the index entry once there is one. A
// rename of one such name over another changes nothing (they are one
// object), but the kernel moves its dentries of the two nodes, whose ids
// then change hands (tree.trade).

const (
	// ovlFhFlagPathUpper marks a handle of an upper object (overlay.upper).
	ovlFhFlagPathUpper = 1 << 2
)

// setupIndex prepares WORK/index for index=on and adds it as the last
// layer: checks (or records) which upper and lower roots the work
// directory and upper belong to, and removes half-made entries.
func (ov *overlay) setupIndex(workDir string) error {
	lowerRoot := ov.layers[1]
	rootOrigin := ov.encodeOrigin(lowerRoot, "")
	upperRoot := ov.encodeOrigin(ov.upper, "")
	if rootOrigin == nil || upperRoot == nil {
		ov.logf("index=on needs file handles on %s and %s: hard links are not kept across copy-up (index=off)", lowerRoot.path, ov.upper.path)
		return nil
	}
	upperRoot[3] |= ovlFhFlagPathUpper
	if err := ov.verifyOrSet(ov.upper, "", ov.xattr.Origin, rootOrigin); err != nil {
		return fmt.Errorf("index=on: upper directory %s was used with other lower layers than %s (mount it with index=off): %w", ov.upper.path, lowerRoot.path, err)
	}
	dir := workDir + "/index"
	mode := uint32(0o700)
	if ov.privileged {
		mode = 0
	}
	if err := unix.Mkdir(dir, mode); err != nil && err != unix.EEXIST {
		return fmt.Errorf("create index directory %s: %w", dir, err)
	}
	l, err := openLayer(dir)
	if err != nil {
		return err
	}
	if err := ov.verifyOrSet(l, "", ov.xattr.Upper, upperRoot); err != nil {
		l.close()
		return fmt.Errorf("index=on: work directory %s belongs to another upper directory than %s: %w", workDir, ov.upper.path, err)
	}
	if ents, err := readLayerDir(l, ""); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.name, "#") {
				removeAllAt(l.fd, e.name)
			}
		}
	}
	ov.index = l
	ov.indexLayer = len(ov.layers)
	ov.layers = append(ov.layers, l)
	ov.indexed = make(map[uint64]string)
	return nil
}

// verifyOrSet checks that rel in l carries the overlay attribute name
// (its full name) with value want, and sets it when it has none.
func (ov *overlay) verifyOrSet(l *layer, rel, name string, want []byte) error {
	got, err := l.getxattrAll(rel, name)
	switch {
	case err == unix.ENODATA:
		return l.setxattr(rel, name, want, 0)
	case err != nil:
		return err
	case !bytes.Equal(got, want):
		return fmt.Errorf("%s is %x, want %x", name, got, want)
	}
	return nil
}

// indexing reports whether a lower non-directory with attributes st goes
// through the index when copied up: a hard-linked one, with index=on.
func (ov *overlay) indexing(st *unix.Stat_t) bool {
	return ov.index != nil && !isDirStat(st) && st.Nlink > 1
}

// indexEntry returns the name of the index entry of path in lower layer
// l, and fills st when the entry exists.
func (ov *overlay) indexEntry(l *layer, path string, st *unix.Stat_t) (string, bool) {
	b := ov.encodeOrigin(l, path)
	if b == nil {
		return "", false
	}
	name := hex.EncodeToString(b)
	return name, ov.index.lstat(name, st) == nil
}

// useIndex makes f, a hard-linked lower file just resolved at path in
// layer l, read its index entry when there is one: f's attributes become
// the entry's, under the lower file's inode number.
func (ov *overlay) useIndex(f *found, l *layer, path string) (string, bool) {
	var st unix.Stat_t
	name, ok := ov.indexEntry(l, path, &st)
	if !ok {
		return "", false
	}
	ino := ov.inoOf(&f.st)
	ov.recordCopyUp(&st, ino)
	ov.emu.Lock()
	ov.indexed[ino] = name
	ov.emu.Unlock()
	f.st = st
	return name, true
}

// indexedName returns the index entry a lower name n reads, if any.
func (n *node) indexedName() (string, bool) {
	ov := n.ov
	if ov.index == nil || !n.key().gen.isLowerLink() {
		return "", false
	}
	ov.emu.Lock()
	defer ov.emu.Unlock()
	name, ok := ov.indexed[n.ino()]
	return name, ok
}

// copyUpIndexed copies up n, a hard-linked file at srcPath in src (a
// lower layer or the index), to rel in upper as a hard link to its index
// entry, made first when there is none. st is src's object.
func (ov *overlay) copyUpIndexed(n *node, src *layer, srcPath string, st *unix.Stat_t, rel string) error {
	name := srcPath
	if src != ov.index {
		b := ov.encodeOrigin(src, srcPath)
		if b == nil {
			return unix.ENOTSUP
		}
		name = hex.EncodeToString(b)
		var ist unix.Stat_t
		if ov.index.lstat(name, &ist) != nil {
			tmp := ov.tempName()
			err := ov.buildCopy(src, srcPath, st, tmp, copySource{src, srcPath}, true, false)
			if err == nil {
				err = ov.work.setxattr(tmp, ov.xattr.Origin, b, 0)
			}
			if err == nil {
				// The union's count is the lower file's, relative to
				// the copy's own (1 once it is the index entry).
				err = ov.work.setxattr(tmp, ov.xattr.Nlink, nlinkValue(int64(st.Nlink)-1), 0)
			}
			if err == nil {
				err = unix.Renameat(ov.work.fd, tmp, ov.index.fd, name)
			}
			if err != nil {
				ov.removeTemp(tmp, st)
				return err
			}
		}
		ov.emu.Lock()
		ov.indexed[n.ino()] = name
		ov.emu.Unlock()
	}
	ov.markImpure(dir(rel))
	o, _ := ov.indexNlink(name)
	if err := unix.Linkat(ov.index.fd, name, ov.upper.fd, rel, 0); err != nil {
		return err
	}
	ov.setIndexNlink(name, o)
	return nil
}

// nlinkValue formats overlay.nlink relative to the upper inode's count.
func nlinkValue(n int64) []byte { return []byte(fmt.Sprintf("U%+d", n)) }

// indexNlink returns the link count the union shows for index entry
// name: its own count corrected by its overlay.nlink.
func (ov *overlay) indexNlink(name string) (int64, bool) {
	var st unix.Stat_t
	if ov.index.lstat(name, &st) != nil {
		return 0, false
	}
	return ov.unionNlink(ov.index, name, &st), true
}

// unionNlink returns the link count the union shows for the indexed
// object path in l (upper or the index), whose own attributes are st.
func (ov *overlay) unionNlink(l *layer, path string, st *unix.Stat_t) int64 {
	n := int64(st.Nlink)
	var buf [24]byte
	sz, err := l.getxattr(path, ov.xattr.Nlink, buf[:])
	if err != nil || sz < 2 || buf[0] != 'U' {
		return n // "L±N" (relative to the lower file) is not written here
	}
	d, err := strconv.ParseInt(string(buf[1:sz]), 10, 64)
	if err != nil {
		return n
	}
	return n + d
}

// setIndexNlink records that the union shows o links to index entry name,
// or removes the entry when no name is left.
func (ov *overlay) setIndexNlink(name string, o int64) {
	var st unix.Stat_t
	if ov.index.lstat(name, &st) != nil {
		return
	}
	if o <= 0 {
		unix.Unlinkat(ov.index.fd, name, 0)
		ov.emu.Lock()
		for ino, n := range ov.indexed {
			if n == name {
				delete(ov.indexed, ino)
			}
		}
		ov.emu.Unlock()
		return
	}
	ov.index.setxattr(name, ov.xattr.Nlink, nlinkValue(o-int64(st.Nlink)), 0)
}

// indexNameOf returns the index entry of the object upper rel (with
// attributes st), if it is indexed: it has an origin and an entry of
// that name.
func (ov *overlay) indexNameOf(rel string, st *unix.Stat_t) (string, bool) {
	if ov.index == nil || isDirStat(st) || st.Nlink < 2 {
		return "", false
	}
	b, err := ov.upper.getxattrAll(rel, ov.xattr.Origin)
	if err != nil {
		return "", false
	}
	name := hex.EncodeToString(b)
	var ist unix.Stat_t
	if ov.index.lstat(name, &ist) != nil || ist.Ino != st.Ino || ist.Dev != st.Dev {
		return "", false
	}
	return name, true
}
