package tests

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// mountWithOptions mounts l through the CLI's fuse-overlayfs form with
// extra options, and returns a function that unmounts it.
func mountWithOptions(t *testing.T, l layout, extra string) func() {
	t.Helper()
	opts := "lowerdir=" + l.Lowers[0] + ",upperdir=" + l.Upper + ",workdir=" + l.Work + "," + extra
	mustOK(t, "unionfuse -o "+opts, cli(t, "-o", opts, l.Merged))
	rec := daemonOf(t, l.Merged)
	return func() { umountCLI(t, l.Merged, rec) }
}

func statT(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestFuseOverlayfsOptions checks fuse-overlayfs's options with its
// meaning, as podman passes them.
func TestFuseOverlayfsOptions(t *testing.T) {
	testutil.RequireFuse(t)
	newUnion := func(t *testing.T) layout {
		l := newLayout(t, testDir(t), 1)
		testutil.BuildDir(t, l.Lowers[0], []testutil.Item{
			{Path: "mine", Kind: 'f', Data: "x\n", UID: 1000, GID: 1000},
			{Path: "roots", Kind: 'f', Data: "y\n"},
			{Path: "d/sub", Kind: 'd'},
		})
		cleanupMount(t, l.Merged)
		return l
	}

	t.Run("uidmapping", func(t *testing.T) {
		// fuse-overlayfs's order, as podman writes --uidmap 0:100000:65536:
		// the id stored on disk first, the id the mount shows second.
		// Disk 70000 shows as 0, so files this test (root) makes are stored
		// as 70000.
		l := newUnion(t)
		umount := mountWithOptions(t, l, "uidmapping=:0:100000:65536:70000:0:1,gidmapping=:0:100000:65536:70000:0:1")
		defer umount()
		if st := statT(t, filepath.Join(l.Merged, "mine")); st.Uid != 101000 || st.Gid != 101000 {
			t.Errorf("a file owned by 1000 on disk shows as %d:%d, want 101000:101000", st.Uid, st.Gid)
		}
		if st := statT(t, filepath.Join(l.Merged, "roots")); st.Uid != 100000 || st.Gid != 100000 {
			t.Errorf("a file owned by 0 on disk shows as %d:%d, want 100000:100000", st.Uid, st.Gid)
		}
		if err := os.Lchown(filepath.Join(l.Merged, "d"), 100000, 100000); err != nil {
			t.Errorf("chown to the id disk 0 shows as: %v", err)
		}
		if err := os.WriteFile(filepath.Join(l.Merged, "new"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if st := statT(t, filepath.Join(l.Upper, "new")); st.Uid != 70000 || st.Gid != 70000 {
			t.Errorf("created by 0:0 through the mount, stored as %d:%d; want 70000:70000", st.Uid, st.Gid)
		}
		if err := os.Lchown(filepath.Join(l.Merged, "new"), 100005, -1); err != nil {
			t.Fatal(err)
		}
		if st := statT(t, filepath.Join(l.Upper, "new")); st.Uid != 5 || st.Gid != 70000 {
			t.Errorf("chowned to 100005 through the mount, stored as %d:%d; want 5:70000", st.Uid, st.Gid)
		}
		if err := os.Lchown(filepath.Join(l.Merged, "new"), 5, -1); !errors.Is(err, unix.EINVAL) {
			t.Errorf("chown to an id no disk id shows as: %v, want EINVAL", err)
		}
	})

	t.Run("squash_to_uid static_nlink noacl volatile context", func(t *testing.T) {
		l := newUnion(t)
		umount := mountWithOptions(t, l, `squash_to_uid=7,squash_to_gid=8,static_nlink,noacl,volatile,xino=off,context="system_u:object_r:container_file_t:s0:c1,c2"`)
		defer umount()
		for _, name := range []string{"mine", "roots", "d"} {
			if st := statT(t, filepath.Join(l.Merged, name)); st.Uid != 7 || st.Gid != 8 {
				t.Errorf("%s shows as %d:%d, want 7:8", name, st.Uid, st.Gid)
			}
		}
		if st := statT(t, filepath.Join(l.Merged, "d")); st.Nlink != 1 {
			t.Errorf("static_nlink: a directory with a subdirectory has nlink %d", st.Nlink)
		}
		acl := []byte{2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff}
		err := unix.Setxattr(filepath.Join(l.Merged, "roots"), "system.posix_acl_access", acl, 0)
		if !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("noacl: setting an ACL gives %v, want EOPNOTSUPP", err)
		}
		f, err := os.OpenFile(filepath.Join(l.Merged, "roots"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("z\n"))
		if err := f.Sync(); err != nil {
			t.Errorf("fsync under volatile: %v", err)
		}
		f.Close()
	})
}

// TestCopyUpKeepsCapabilitiesAndACLs: file capabilities and POSIX ACLs of
// a lower file survive its copy-up, and setcap through the mount works.
func TestCopyUpKeepsCapabilitiesAndACLs(t *testing.T) {
	testutil.RequireFuse(t)
	l := newLayout(t, testDir(t), 1)
	testutil.BuildDir(t, l.Lowers[0], []testutil.Item{
		{Path: "ping", Kind: 'f', Data: "#!/bin/sh\n", Mode: 0o755},
		{Path: "shared", Kind: 'f', Data: "s\n", Mode: 0o640},
		{Path: "plain", Kind: 'f', Data: "p\n", Mode: 0o755},
	})
	// cap_net_raw+ep, as setcap writes it (VFS_CAP_REVISION_2).
	capNetRaw := []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}
	// user::rw-, user:1000:r--, group::r--, mask::r--, other::---
	acl := []byte{2, 0, 0, 0,
		1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
		2, 0, 4, 0, 0xe8, 0x03, 0, 0,
		4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
	if err := unix.Setxattr(filepath.Join(l.Lowers[0], "ping"), "security.capability", capNetRaw, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(l.Lowers[0], "shared"), "system.posix_acl_access", acl, 0); err != nil {
		t.Skipf("the test filesystem has no POSIX ACLs: %v", err)
	}
	cleanupMount(t, l.Merged)
	umount := mountWithOptions(t, l, "")
	for _, name := range []string{"ping", "shared"} {
		if err := os.Chtimes(filepath.Join(l.Merged, name), testutil.FixedTime, testutil.FixedTime); err != nil { // copies up
			t.Fatal(err)
		}
	}
	if err := unix.Setxattr(filepath.Join(l.Merged, "plain"), "security.capability", capNetRaw, 0); err != nil {
		t.Errorf("setcap on a lower file through the mount: %v", err)
	}
	umount()
	for _, c := range []struct{ name, attr string }{
		{"ping", "security.capability"}, {"plain", "security.capability"}, {"shared", "system.posix_acl_access"},
	} {
		got, err := getXattr(filepath.Join(l.Upper, c.name), c.attr)
		want := capNetRaw
		if c.attr == "system.posix_acl_access" {
			want = acl
		}
		if err != nil || got != string(want) {
			t.Errorf("upper/%s: %s = %x, %v; want %x", c.name, c.attr, got, err, want)
		}
	}
	if st := statT(t, filepath.Join(l.Upper, "shared")); st.Mode&0o777 != 0o640 {
		t.Errorf("upper/shared mode %o after copy-up, want 640", st.Mode&0o777)
	}
}
