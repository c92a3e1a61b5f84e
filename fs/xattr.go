package fs

import (
	"context"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The overlay keeps its own attributes under a private prefix. Like the
// kernel (Linux 6.7+), it lets users store attributes with that prefix too,
// escaped: "trusted.overlay.foo" set through the mount is stored as
// "trusted.overlay.overlay.foo" in the layer (ovlfmt.Xattrs.Escape).
// Unescaped private names are never shown through the mount.

// isACL reports whether name is a POSIX ACL, which Config.NoACL refuses.
func isACL(name string) bool { return strings.HasPrefix(name, "system.posix_acl_") }

// refused reports whether the configuration refuses attribute name.
func (ov *overlay) refused(name string) bool { return ov.cfg.NoACL && isACL(name) }

// Getxattr reads an attribute of the topmost copy.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if n.ov.refused(attr) {
		return 0, syscall.EOPNOTSUPP
	}
	stored := n.ov.xattr.Escape(attr)
	if h := n.ov.upperHandle(n.key(), nil); h != nil {
		var sz int
		done, err := h.withFd(func(fd int) (err error) {
			sz, err = unix.Fgetxattr(fd, stored, dest)
			return err
		})
		if done {
			return uint32(max(sz, 0)), errnoOf(err)
		}
	}
	var sz int
	getxattr := func(p string) (err error) {
		sz, err = unix.Getxattr(p, stored, dest)
		return err
	}
	if ok, err := n.withOrphanDir(getxattr); ok {
		return uint32(max(sz, 0)), errnoOf(err)
	}
	if ok, err := n.withSupersededCopy(getxattr); ok {
		return uint32(max(sz, 0)), errnoOf(err)
	}
	n.ov.mu.RLock()
	defer n.ov.mu.RUnlock()
	l, p, errno := n.topPath()
	if errno != 0 {
		return 0, errno
	}
	sz, err := l.getxattr(p, stored, dest)
	return uint32(max(sz, 0)), errnoOf(err)
}

// Listxattr lists the attributes of the topmost copy, without the
// overlay's own.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	var names []string
	done := false
	var err error
	if h := n.ov.upperHandle(n.key(), nil); h != nil {
		done, err = h.withFd(func(fd int) (err error) {
			names, err = listxattrFd(fd)
			return err
		})
	}
	listxattr := func(p string) (err error) {
		names, err = listxattrPath(p)
		return err
	}
	if !done {
		done, err = n.withOrphanDir(listxattr)
	}
	if !done {
		done, err = n.withSupersededCopy(listxattr)
	}
	if !done {
		n.ov.mu.RLock()
		defer n.ov.mu.RUnlock()
		l, p, errno := n.topPath()
		if errno != 0 {
			return 0, errno
		}
		names, err = l.listxattr(p)
	}
	if err != nil {
		return 0, errnoOf(err)
	}
	var b []byte
	for _, stored := range names {
		if shown, ok := n.ov.xattr.Unescape(stored); ok && !n.ov.refused(shown) {
			b = append(b, shown...)
			b = append(b, 0)
		}
	}
	if len(dest) == 0 {
		return uint32(len(b)), 0
	}
	if len(b) > len(dest) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

// Setxattr copies the node up and sets the attribute there.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if n.ov.refused(attr) {
		return syscall.EOPNOTSUPP
	}
	stored := n.ov.xattr.Escape(attr)
	setxattr := func(p string) error { return unix.Setxattr(p, stored, data, int(flags)) }
	if ok, err := n.withOrphanDir(setxattr); ok {
		return errnoOf(err)
	}
	if ok, err := n.withSupersededCopy(setxattr); ok {
		if err == nil {
			n.notifyAliases()
		}
		return errnoOf(err)
	}
	h, errno := n.handleForChange(nil)
	if errno != 0 {
		return errno
	}
	if h != nil {
		done, err := h.withFd(func(fd int) error { return unix.Fsetxattr(fd, stored, data, int(flags)) })
		if done {
			if err == nil {
				n.notifyAliases() // an ACL may have changed the mode
			}
			return errnoOf(err)
		}
	}
	n.ov.mu.Lock()
	defer n.ov.mu.Unlock()
	if name, ok := n.indexedName(); ok && !n.isUpper() {
		// As the kernel: the object has an upper copy (the index entry),
		// which this name shares without being linked up (index.go).
		err := n.ov.index.setxattr(name, stored, data, int(flags))
		if err == nil {
			n.notifyAliases()
		}
		return errnoOf(err)
	}
	if errno := n.copyUpForChange(false); errno != 0 {
		return errno
	}
	err := n.ov.upper.setxattr(n.rel(), stored, data, int(flags))
	if err == nil {
		n.notifyAliases()
	}
	return errnoOf(err)
}

// Removexattr copies the node up and removes the attribute there.
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if n.ov.refused(attr) {
		return syscall.EOPNOTSUPP
	}
	stored := n.ov.xattr.Escape(attr)
	removexattr := func(p string) error { return unix.Removexattr(p, stored) }
	if ok, err := n.withOrphanDir(removexattr); ok {
		return errnoOf(err)
	}
	if ok, err := n.withSupersededCopy(removexattr); ok {
		if err == nil {
			n.notifyAliases()
		}
		return errnoOf(err)
	}
	h, errno := n.handleForChange(nil)
	if errno != 0 {
		return errno
	}
	if h != nil {
		done, err := h.withFd(func(fd int) error { return unix.Fremovexattr(fd, stored) })
		if done {
			if err == nil {
				n.notifyAliases() // an ACL may have changed the mode
			}
			return errnoOf(err)
		}
	}
	n.ov.mu.Lock()
	defer n.ov.mu.Unlock()
	if !n.isUpper() {
		// Removing what is not there must not copy up.
		l, p, errno := n.topPath()
		if errno != 0 {
			return errno
		}
		if _, err := l.getxattr(p, stored, nil); err != nil {
			return errnoOf(err)
		}
	}
	if name, ok := n.indexedName(); ok && !n.isUpper() {
		err := n.ov.index.removexattr(name, stored) // as Setxattr
		if err == nil {
			n.notifyAliases()
		}
		return errnoOf(err)
	}
	if errno := n.copyUpForChange(false); errno != 0 {
		return errno
	}
	err := n.ov.upper.removexattr(n.rel(), stored)
	if err == unix.ENODATA {
		return syscall.ENODATA
	}
	if err == nil {
		n.notifyAliases()
	}
	return errnoOf(err)
}
