package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

// isPureUpper reports whether a resolved object lives in upper only: the
// only kind of directory that can be renamed without a redirect.
func isPureUpper(f *found) bool { return len(f.layers) == 1 && f.layers[0] == 0 }

// childNode returns the node of an entry the kernel has looked up.
func (n *node) childNode(name string) (*node, syscall.Errno) {
	ch := n.GetChild(name)
	if ch == nil {
		return nil, syscall.ENOENT
	}
	cn, ok := ch.Operations().(*node)
	if !ok {
		return nil, syscall.EIO
	}
	return cn, 0
}

var _ = (gofs.NodeRenamer)((*node)(nil))

// Rename moves name in n to newName in newParent, as the kernel's overlay
// does: files are copied up and moved; a directory that has lower content
// is copied up and moved with a redirect to its lower content
// (redirect.go), or, with redirect_dir other than on, fails with EXDEV
// (callers such as mv then copy); a name that remains in a lower layer
// gets a whiteout; a directory of upper only that moves into a merged
// directory becomes opaque.
func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) (res syscall.Errno) {
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	ov := n.ov
	if ov.upper == nil {
		return syscall.EROFS
	}
	if flags&^(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) != 0 ||
		flags == unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE {
		return syscall.EINVAL
	}
	exchange := flags&unix.RENAME_EXCHANGE != 0
	ov.mu.Lock()
	defer ov.mu.Unlock()

	srcView, dstView := n.view(), np.view()
	src, errno := ov.resolve(srcView, name)
	if errno != 0 {
		return errno
	}
	dst, errno := ov.resolve(dstView, newName)
	dstExists := errno == 0
	if errno != 0 && errno != syscall.ENOENT {
		return errno
	}
	switch {
	case flags&unix.RENAME_NOREPLACE != 0 && dstExists:
		return syscall.EEXIST
	case exchange && !dstExists:
		return syscall.ENOENT
	}
	srcDir := isDirStat(&src.st)
	dstDir := dstExists && isDirStat(&dst.st)
	var dstKey nodeKey
	if dstExists {
		dstKey = ov.keyOf(&dst, join(np.rel(), newName))
		srcKey := ov.keyOf(&src, join(n.rel(), name))
		if srcKey == dstKey || ov.index != nil && srcKey.ino == dstKey.ino && !isDirStat(&src.st) {
			// The same object (or upper hard links to it): nothing to do.
			// Names of a hard-linked lower file are distinct nodes, as in
			// the kernel, and are renamed — unless index=on makes them
			// one object, as it does in the kernel.
			return 0
		}
	}
	// Directories with lower content move with a redirect.
	srcRedirect := srcDir && !isPureUpper(&src)
	dstRedirect := exchange && dstDir && !isPureUpper(&dst)
	if (srcRedirect || dstRedirect) && !ov.redirect.creates() {
		return syscall.EXDEV
	}
	if dstExists && !exchange {
		switch {
		case srcDir && !dstDir:
			return syscall.ENOTDIR
		case !srcDir && dstDir:
			return syscall.EISDIR
		case dstDir && !isPureUpper(&dst):
			// A directory in upper only is checked by rename(2) itself,
			// after the source is marked opaque, as in the kernel.
			empty, errno := ov.isEmptyDir(dstView.child(newName, &dst))
			if errno != 0 {
				return errno
			}
			if !empty {
				return syscall.ENOTEMPTY
			}
		}
	}

	// Everything that takes part must have an upper copy.
	srcNode, errno := n.childNode(name)
	if errno != 0 {
		return errno
	}
	if errno := srcNode.copyUp(); errno != 0 {
		return errno
	}
	if errno := np.copyUp(); errno != 0 {
		return errno
	}
	stale := srcNode.staleAfterCopyUp()
	var dstNode *node
	if exchange {
		if dstNode, errno = np.childNode(newName); errno != 0 {
			return errno
		}
		if errno := dstNode.copyUp(); errno != 0 {
			return errno
		}
		stale = stale || dstNode.staleAfterCopyUp()
	}
	if stale {
		// Both sides are copied up before the kernel is asked (once) to
		// look them up again: it retries a rename after ESTALE only once.
		return syscall.ESTALE
	}
	srcRel := join(n.rel(), name)
	dstRel := join(np.rel(), newName)
	ov.markImpureIfOrigin(np.rel(), srcRel)
	if exchange {
		ov.markImpureIfOrigin(n.rel(), dstRel)
	}
	srcInLower, errno := ov.lowerHasName(srcView, name)
	if errno != 0 {
		return errno
	}

	// A directory of upper only that moves into a merged directory becomes
	// opaque, so that whatever the lower layers hold (or may, behind a
	// whiteout) under its new name stays hidden. Like the kernel, this
	// does not depend on the name being in a lower layer. A directory with
	// lower content gets a redirect instead, which hides the new name's
	// lower content as well.
	samedir := n == np
	var moved []movedDir
	defer func() {
		if res == 0 {
			for _, m := range moved {
				m.record()
			}
		}
	}()
	if srcRedirect {
		moved = append(moved, srcNode.beforeMove())
		if errno := ov.setRedirect(srcNode, samedir); errno != 0 {
			return errno
		}
	} else if srcDir {
		if err := ov.makeOpaqueIfMerged(srcRel, np.layers()); err != nil {
			return errnoOf(err)
		}
	}
	if exchange {
		if dstRedirect {
			moved = append(moved, dstNode.beforeMove())
			if errno := ov.setRedirect(dstNode, samedir); errno != 0 {
				return errno
			}
		} else if dstDir {
			if err := ov.makeOpaqueIfMerged(dstRel, n.layers()); err != nil {
				return errnoOf(err)
			}
		}
		return errnoOf(unix.Renameat2(ov.upper.fd, srcRel, ov.upper.fd, dstRel, unix.RENAME_EXCHANGE))
	}
	// A replaced name of an indexed object counts down its links; as the
	// kernel, a lower one is copied up (into the index) first.
	idx, indexed := "", false
	var before int64
	if dstExists && !dstDir && ov.index != nil {
		if dst.layers[0] != 0 && ov.indexing(&dst.st) {
			dn, errno := np.childNode(newName)
			if errno != 0 {
				return errno
			}
			if errno := dn.copyUp(); errno != 0 {
				return errno
			}
		}
		var ust unix.Stat_t
		if ov.upper.lstat(dstRel, &ust) == nil {
			if idx, indexed = ov.indexNameOf(dstRel, &ust); indexed {
				before, _ = ov.indexNlink(idx)
			}
		}
	}
	defer func() {
		if indexed && res == 0 {
			ov.setIndexNlink(idx, before-1)
		}
	}()
	var replaced unix.Stat_t
	hadUpperDst, replaced, err := ov.upper.exists(dstRel)
	if err != nil {
		return errnoOf(err)
	}
	if hadUpperDst && isDirStat(&replaced) {
		dn, _ := np.childNode(newName)
		ov.keepOrphanDir(dn, dstRel) // it may still be open (orphan.go)
	}
	if dstExists && !exchange && isSpecialFile(&dst.st) {
		dn, _ := np.childNode(newName)
		ov.keepOrphanSpecial(dn) // it may still be open (orphan.go)
	}
	if hadUpperDst && isDirStat(&replaced) && !isPureUpper(&dst) {
		// An empty merged directory may still hold whiteouts in upper.
		if err := ov.removeUpperDir(dstRel); err != nil {
			return errnoOf(err)
		}
	}
	if srcDir && hadUpperDst && ov.isWhiteout(ov.upper, dstRel, &replaced) {
		// rename(2) cannot put a directory over a whiteout (a character
		// device): swap the two, then the whiteout stands at the old name,
		// where it is either needed or removed.
		if err := unix.Renameat2(ov.upper.fd, srcRel, ov.upper.fd, dstRel, unix.RENAME_EXCHANGE); err != nil {
			return errnoOf(err)
		}
		if !srcInLower {
			if err := unix.Unlinkat(ov.upper.fd, srcRel, 0); err != nil {
				return errnoOf(err)
			}
		}
	} else if err := ov.moveInUpper(srcRel, dstRel, srcInLower); err != nil {
		return errnoOf(err)
	}
	if dstExists {
		np.notifyChildAliases(newName) // its link count fell (alias.go)
	}
	if dstExists && (dst.layers[0] != 0 || dstDir || replaced.Nlink <= 1) {
		// The replaced object is gone (another hard link keeps it alive).
		var upperSt *unix.Stat_t
		if dst.layers[0] == 0 {
			upperSt = &replaced
		}
		dn, _ := np.childNode(newName)
		ov.forget(dn, upperSt)
	}
	// go-fuse moves the node in its tree only after this returns, and
	// without ov.mu: meanwhile an operation below it would compute its
	// old path. Naming it at its new place now (a second parent, which
	// go-fuse's move then drops) closes that window.
	np.AddChild(newName, srcNode.EmbeddedInode(), true)
	return 0
}

// makeOpaqueIfMerged marks the upper directory rel opaque when the
// directory it is moving into (with the given layers) merges lower layers.
func (ov *overlay) makeOpaqueIfMerged(rel string, newParentLayers []int) error {
	if len(newParentLayers) < 2 || ov.isOpaque(ov.upper, rel) {
		return nil
	}
	return ov.setOpaque(ov.upper, rel)
}

// moveInUpper renames srcRel to dstRel within upper, leaving a whiteout at
// srcRel when a lower layer still has that name.
func (ov *overlay) moveInUpper(srcRel, dstRel string, whiteout bool) error {
	if !whiteout {
		return unix.Renameat(ov.upper.fd, srcRel, ov.upper.fd, dstRel)
	}
	err := unix.Renameat2(ov.upper.fd, srcRel, ov.upper.fd, dstRel, unix.RENAME_WHITEOUT)
	if err != unix.EINVAL && err != unix.EPERM {
		return err
	}
	// RENAME_WHITEOUT needs CAP_MKNOD and filesystem support.
	if err := unix.Renameat(ov.upper.fd, srcRel, ov.upper.fd, dstRel); err != nil {
		return err
	}
	return ov.makeWhiteout(ov.upper.fd, srcRel, srcRel)
}
