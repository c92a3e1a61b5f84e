// Package ovlfmt is the on-disk format of overlayfs, as the kernel
// (fs/overlayfs, Documentation/filesystems/overlayfs.rst) reads and writes
// it: the contract between the filesystem (fs), which serves layers in
// this format, and the layer store (cowcache), which unpacks image layers
// into it and packs upper directories out of it. Nothing else in unionfuse
// spells these names.
//
// # Whiteouts and opaque directories
//
// A name deleted from the union is hidden in the layers below by a
// whiteout in the layer above: a character device with device number 0/0
// (see [IsWhiteout], [MakeWhiteout]). Where such a device cannot be made,
// the kernel (Linux 6.7+) also reads a zero-size regular file with the
// private attribute "whiteout"; its directory is then marked with
// "opaque" = "x" so that a listing knows to look for them. A directory
// whose content replaces everything below it is opaque: "opaque" = "y".
//
// # Private attributes
//
// The overlay keeps its own extended attributes under the prefix
// trusted.overlay. (only root may set trusted.*), or user.overlay. when
// mounted with -o userxattr, which an unprivileged user may set. [Trusted]
// and [User] hold the full names of each namespace, computed once, so that
// a lookup asks for a constant rather than building a name:
//
//	opaque    "y": opaque directory; "x": holds xattr whiteouts
//	whiteout  on a zero-size regular file: a whiteout
//	redirect  on a renamed directory: where its lower content is
//	origin    on a copied-up object: file handle of its lower original
//	impure    "y" on a directory holding copies with an origin
//	nlink     on an indexed object: its link count, relative to upper's
//	upper     on the index directory's root: the upper root's handle
//	metacopy  on a metadata-only copy (read, never written by unionfuse)
//
// A user's own attribute under the private prefix is stored escaped
// (Linux 6.7+): trusted.overlay.foo set through the mount is kept as
// trusted.overlay.overlay.foo in the layer ([Xattrs.Escape],
// [Xattrs.Unescape]). Unescaped private names are never shown.
//
// # AUFS whiteouts
//
// Image layers (OCI tarballs, and the layer directories of
// containers-storage for a FUSE mount program) use the AUFS format
// instead: a file ".wh.NAME" hides NAME, a file ".wh..wh..opq" makes its
// directory opaque, and other ".wh..wh." names are AUFS metadata, never
// shown. cowcache converts those to the kernel's format when it unpacks a
// layer and back when it packs one; fs reads them in lower layers.
package ovlfmt
