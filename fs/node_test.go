package fs

import (
	"testing"
	"unsafe"
)

// TestNodeFitsItsSizeClass keeps a node, go-fuse's Inode with unionfuse's
// fields, within Go's 176-byte size class: the kernel may hold tens of
// thousands of nodes per union, and one field more (or a go-fuse upgrade
// with a larger Inode) moves every node into the 192-byte class.
func TestNodeFitsItsSizeClass(t *testing.T) {
	if s := unsafe.Sizeof(node{}); s > 176 {
		t.Errorf("a node takes %d bytes, over the 176 of its size class", s)
	}
}
