package fs

import (
	"context"
	"syscall"

	"golang.org/x/sys/unix"
)

// The whole RENAME request runs under ov.mu (bridge.Rename): every path
// this server uses comes from the node tree (node.rel), which is updated
// after node.Rename returns. Between the move in upper and the move in
// the tree, an operation would pair the tree of before with the upper of
// after: a lookup in a directory just exchanged would find the other
// directory's entries and link them in its place (one object under two
// names from then on), or find none and have the kernel cache the
// absence. node.Rename takes no lock of its own.

// isPureUpper reports whether a resolved object lives in upper only: the
// only kind of directory that can be renamed without a redirect.
func isPureUpper(f *found) bool { return len(f.layers) == 1 && f.layers[0] == 0 }

// childNode returns the node of an entry the kernel has looked up.
func (n *node) childNode(name string) (*node, syscall.Errno) {
	ch := n.GetChild(name)
	if ch == nil {
		return nil, syscall.ENOENT
	}
	return ch, 0
}

// Rename moves name in n to newName in newParent, as the kernel's overlay
// does: files are copied up and moved; a directory that has lower content
// is copied up and moved with a redirect to its lower content
// (redirect.go), or, with redirect_dir other than on, fails with EXDEV
// (callers such as mv then copy); a name that remains in a lower layer
// gets a whiteout; a directory of upper only that moves into a merged
// directory becomes opaque.
//
// It runs under ov.mu, which renameServer holds for the whole request
// (see there). It checks what rename(2) refuses (check), gives every
// object taking part an upper copy (copyUp), then moves them in upper and
// updates what the overlay knows of them (apply).
//
// same reports a rename that changes nothing because the two names are
// one object (rename(2) then succeeds and does nothing). Each name may
// still be a node of its own: with index=on, each lower name of a
// hard-linked file is (index.go), where the kernel's overlay has one
// inode for both names and does not even get the call.
func (n *node) Rename(ctx context.Context, name string, np *node, newName string, flags uint32) (same bool, errno syscall.Errno) {
	ov := n.ov
	if ov.upper == nil {
		return false, syscall.EROFS
	}
	if flags&^(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) != 0 ||
		flags == unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE {
		return false, syscall.EINVAL
	}
	r := renaming{ov: ov, parent: n, name: name, newParent: np, newName: newName, flags: flags}
	if same, errno := r.check(); same || errno != 0 {
		return same, errno
	}
	if errno := r.copyUp(); errno != 0 {
		return false, errno
	}
	return false, r.apply()
}

// renaming is one Rename in progress: name in parent moves to newName in
// newParent. Each step fills in what the next ones use.
type renaming struct {
	ov                *overlay
	parent, newParent *node
	name, newName     string
	flags             uint32

	// Set by check.
	srcView, dstView dirView
	src, dst         found // dst only when dstExists
	dstExists        bool
	srcDir, dstDir   bool
	// srcRedirect and dstRedirect are set for a directory with lower
	// content, which moves with a redirect (dst only in an exchange).
	srcRedirect, dstRedirect bool

	// Set by copyUp.
	srcNode *node
	dstNode *node // nil when the kernel has not looked newName up

	// Set by apply: the directories moved with a redirect.
	moved  [2]movedDir
	nmoved int
}

func (r *renaming) exchange() bool { return r.flags&unix.RENAME_EXCHANGE != 0 }

// check resolves both names and returns what rename(2) must fail with, or
// noop when the two names are one object.
func (r *renaming) check() (noop bool, errno syscall.Errno) {
	ov := r.ov
	r.srcView, r.dstView = r.parent.view(), r.newParent.view()
	if r.src, errno = ov.resolve(r.srcView, r.name); errno != 0 {
		return false, errno
	}
	r.dst, errno = ov.resolve(r.dstView, r.newName)
	r.dstExists = errno == 0
	if errno != 0 && errno != syscall.ENOENT {
		return false, errno
	}
	switch {
	case r.flags&unix.RENAME_NOREPLACE != 0 && r.dstExists:
		return false, syscall.EEXIST
	case r.exchange() && !r.dstExists:
		return false, syscall.ENOENT
	}
	r.srcDir = isDirStat(&r.src.st)
	r.dstDir = r.dstExists && isDirStat(&r.dst.st)
	if r.dstExists {
		dstKey := ov.keyOf(&r.dst, r.newParent, r.newName)
		srcKey := ov.keyOf(&r.src, r.parent, r.name)
		if srcKey == dstKey || ov.index != nil && srcKey.ino == dstKey.ino && !r.srcDir {
			// The same object (or upper hard links to it): nothing to do.
			// Names of a hard-linked lower file are distinct nodes, as in
			// the kernel, and are renamed — unless index=on makes them
			// one object, as it does in the kernel.
			return true, 0
		}
	}
	// Directories with lower content move with a redirect.
	r.srcRedirect = r.srcDir && !isPureUpper(&r.src)
	r.dstRedirect = r.exchange() && r.dstDir && !isPureUpper(&r.dst)
	if (r.srcRedirect || r.dstRedirect) && !ov.redirect.creates() {
		return false, syscall.EXDEV
	}
	if !r.dstExists || r.exchange() {
		return false, 0
	}
	switch {
	case r.srcDir && !r.dstDir:
		return false, syscall.ENOTDIR
	case !r.srcDir && r.dstDir:
		return false, syscall.EISDIR
	case r.dstDir && !isPureUpper(&r.dst):
		// A directory in upper only is checked by rename(2) itself,
		// after the source is marked opaque, as in the kernel.
		empty, errno := ov.isEmptyDir(r.dstView.child(r.newName, &r.dst))
		if errno != 0 {
			return false, errno
		}
		if !empty {
			return false, syscall.ENOTEMPTY
		}
	}
	return false, 0
}

// copyUp gives an upper copy to everything that takes part: the source,
// the new parent, and the destination when it is exchanged or is a lower
// name of an indexed file (whose replacement counts down its links, so
// it is copied up into the index first, as in the kernel).
func (r *renaming) copyUp() syscall.Errno {
	var errno syscall.Errno
	if r.srcNode, errno = r.parent.childNode(r.name); errno != 0 {
		return errno
	}
	if errno := r.srcNode.copyUp(); errno != 0 {
		return errno
	}
	if errno := r.newParent.copyUp(); errno != 0 {
		return errno
	}
	stale := r.srcNode.staleAfterCopyUp()
	var dstErrno syscall.Errno
	r.dstNode, dstErrno = r.newParent.childNode(r.newName)
	if r.exchange() {
		if dstErrno != 0 {
			return dstErrno
		}
		if errno := r.dstNode.copyUp(); errno != 0 {
			return errno
		}
		stale = stale || r.dstNode.staleAfterCopyUp()
	}
	if stale {
		// Both sides are copied up before the kernel is asked (once) to
		// look them up again: it retries a rename after ESTALE only once.
		return syscall.ESTALE
	}
	replacedLowerLink := r.dstExists && !r.dstDir && !r.exchange() &&
		r.dst.layers[0] != 0 && r.ov.indexing(&r.dst.st)
	if replacedLowerLink {
		if dstErrno != 0 {
			return dstErrno
		}
		return r.dstNode.copyUp()
	}
	return 0
}

// apply makes the rename in upper: marks first (impure parents, the
// redirects or opaque marks of moving directories), then the move, then
// the overlay's own records.
func (r *renaming) apply() syscall.Errno {
	ov := r.ov
	srcRel := join(r.parent.rel(), r.name)
	dstRel := join(r.newParent.rel(), r.newName)
	ov.markImpureIfOrigin(r.newParent.rel(), srcRel)
	if r.exchange() {
		ov.markImpureIfOrigin(r.parent.rel(), dstRel)
	}
	srcInLower, errno := ov.lowerHasName(r.srcView, r.name)
	if errno != 0 {
		return errno
	}
	if errno := r.prepareDir(r.srcNode, srcRel, r.srcDir, r.srcRedirect, r.newParent); errno != 0 {
		return errno
	}
	if r.exchange() {
		if errno := r.prepareDir(r.dstNode, dstRel, r.dstDir, r.dstRedirect, r.parent); errno != 0 {
			return errno
		}
		if err := unix.Renameat2(ov.upper.fd, srcRel, ov.upper.fd, dstRel, unix.RENAME_EXCHANGE); err != nil {
			return errnoOf(err)
		}
	} else if errno := r.replace(srcRel, dstRel, srcInLower); errno != 0 {
		return errno
	}
	for _, m := range r.moved[:r.nmoved] {
		m.record()
	}
	return 0
}

// prepareDir readies d, at rel in upper, to move into the directory into.
// A directory with lower content gets a redirect to it, and is noted in
// r.moved, to record where that content lives once it has moved. A
// directory of upper only is marked opaque when into merges lower layers,
// so that what they hold (or may, behind a whiteout) under its new name
// stays hidden; like the kernel, the mark does not depend on the name
// being in a lower layer. (A redirect hides the new name's lower content
// as well.) Anything else needs nothing.
func (r *renaming) prepareDir(d *node, rel string, isDir, redirect bool, into *node) syscall.Errno {
	switch {
	case redirect || !isDir && d != nil && d.isMetacopy():
		// A metacopy file, too, records where its data lives
		// (metacopy.go), as the kernel's ovl_set_redirect.
		r.moved[r.nmoved] = d.beforeMove()
		r.nmoved++
		return r.ov.setRedirect(d, r.parent == r.newParent && (isDir || !d.lowerLinked()))
	case isDir:
		return errnoOf(r.ov.makeOpaqueIfMerged(rel, into.layers()))
	}
	return 0
}

// replace moves srcRel over dstRel in upper (a rename that is not an
// exchange), leaving a whiteout at srcRel when srcInLower, and drops what
// is known of the object replaced.
func (r *renaming) replace(srcRel, dstRel string, srcInLower bool) syscall.Errno {
	ov := r.ov
	// A replaced name of an indexed object counts down its links.
	idx, indexed := "", false
	var before int64
	if r.dstExists && !r.dstDir && ov.index != nil {
		var ust unix.Stat_t
		if ov.upper.lstat(dstRel, &ust) == nil {
			if idx, indexed = ov.indexNameOf(dstRel, &ust); indexed {
				before, _ = ov.indexNlink(idx)
			}
		}
	}
	hadUpperDst, replaced, err := ov.upper.exists(dstRel)
	if err != nil {
		return errnoOf(err)
	}
	// It may still be open (orphan.go).
	hold, replacedDone := noOrphan, false
	defer func() { hold.keep(replacedDone) }()
	if hadUpperDst && isDirStat(&replaced) {
		hold = ov.holdOrphanDir(r.dstNode, dstRel)
	}
	if r.dstExists && isSpecialFile(&r.dst.st) {
		hold = ov.holdOrphanSpecial(r.dstNode)
	}
	if hadUpperDst && isDirStat(&replaced) && !isPureUpper(&r.dst) {
		// An empty merged directory may still hold whiteouts in upper.
		if err := ov.removeUpperDir(dstRel); err != nil {
			return errnoOf(err)
		}
		replacedDone = true // gone, whatever follows
	}
	if r.srcDir && hadUpperDst && ov.isWhiteout(ov.upper, dstRel, &replaced) {
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
	replacedDone = true
	if r.dstExists && r.dstNode != nil {
		r.dstNode.notifyAliases() // its link count fell (alias.go)
	}
	if r.dstExists && (r.dst.layers[0] != 0 || r.dstDir || replaced.Nlink <= 1) {
		// The replaced object is gone (another hard link keeps it alive).
		var upperSt *unix.Stat_t
		if r.dst.layers[0] == 0 {
			upperSt = &replaced
		}
		ov.forget(r.dstNode, upperSt)
	}
	if indexed {
		ov.setIndexNlink(idx, before-1)
	}
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
