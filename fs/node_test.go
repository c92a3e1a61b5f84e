package fs

import (
	"testing"
	"unsafe"
)

// TestNodeFitsItsSizeClass keeps a node within Go's 80-byte size class:
// the kernel may hold tens of thousands of nodes per union, and one field
// more moves every node into the 96-byte class.
func TestNodeFitsItsSizeClass(t *testing.T) {
	if s := unsafe.Sizeof(node{}); s > 80 {
		t.Errorf("a node takes %d bytes, over the 80 of its size class", s)
	}
}
