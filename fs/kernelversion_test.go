package fs

import "testing"

func TestKernelAtLeast(t *testing.T) {
	if !kernelAtLeast(2, 6) {
		t.Error("this kernel is not even 2.6")
	}
	if kernelAtLeast(999, 0) {
		t.Error("this kernel is 999.0 or later")
	}
}
