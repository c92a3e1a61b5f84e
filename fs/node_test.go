package fs

import (
	"testing"
	"unsafe"
)

// TestNodeFitsItsSizeClass keeps a node within Go's 128-byte size class:
// the kernel may hold tens of thousands of nodes per union, and one field
// more moves every node into the 144-byte class.
func TestNodeFitsItsSizeClass(t *testing.T) {
	if s := unsafe.Sizeof(node{}); s > 128 {
		t.Errorf("a node takes %d bytes, over the 128 of its size class", s)
	}
}
