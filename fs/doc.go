// Package fs implements the overlay filesystem served over FUSE: lookup
// through an upper layer and a stack of read-only lower layers, copy-up on
// write, whiteouts and opaque directories in the kernel overlayfs format.
package fs
