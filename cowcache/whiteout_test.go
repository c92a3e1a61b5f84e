package cowcache

import (
	"bytes"
	"os"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

func TestWhiteoutsWithUserXattr(t *testing.T) {
	in := testutil.Tar(t, testutil.Spec("d/", "d/.wh..wh..opq=", "d/keep=k", ".wh.gone=", "e/", "e/.wh.x="))
	dst := t.TempDir()
	if _, err := unpackLayer(dst, bytes.NewReader(in), unpackOptions{noChown: true, userXattr: true}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"gone", "e/x"} {
		var st unix.Stat_t
		if err := unix.Lstat(dst+"/"+n, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("%s: want a char 0/0 whiteout, got mode %o rdev %d err %v", n, st.Mode, st.Rdev, err)
		}
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(dst+"/d", "user.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("d: want user.overlay.opaque=y, got %q %v", buf[:n], err)
	}
	if _, err := unix.Lgetxattr(dst+"/d", "trusted.overlay.opaque", buf); err == nil {
		t.Error("d has trusted.overlay.opaque in userxattr mode")
	}
	// A directory keeps the tarball's time, whiteout or not.
	fi, err := os.Stat(dst + "/e")
	if err != nil || !fi.ModTime().Equal(testutil.FixedTime) {
		t.Errorf("e has mtime %v (%v), want the tarball's", fi.ModTime(), err)
	}
}
