package ovlfmt

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Trusted.Opaque, "trusted.overlay.opaque"},
		{Trusted.Whiteout, "trusted.overlay.whiteout"},
		{Trusted.Redirect, "trusted.overlay.redirect"},
		{Trusted.Origin, "trusted.overlay.origin"},
		{Trusted.Impure, "trusted.overlay.impure"},
		{Trusted.Nlink, "trusted.overlay.nlink"},
		{Trusted.Upper, "trusted.overlay.upper"},
		{Trusted.Metacopy, "trusted.overlay.metacopy"},
		{Trusted.Probe, "trusted.overlay.probe"},
		{User.Opaque, "user.overlay.opaque"},
		{User.Whiteout, "user.overlay.whiteout"},
		{User.Redirect, "user.overlay.redirect"},
		{User.Origin, "user.overlay.origin"},
		{User.Impure, "user.overlay.impure"},
		{User.Nlink, "user.overlay.nlink"},
		{User.Upper, "user.overlay.upper"},
		{User.Metacopy, "user.overlay.metacopy"},
		{User.Probe, "user.overlay.probe"},
		{For(false).Opaque, "trusted.overlay.opaque"},
		{For(true).Opaque, "user.overlay.opaque"},
		{AufsOpaque, ".wh..wh..opq"},
		{AufsMetaPrefix, ".wh..wh."},
		{AufsWhiteout("a b"), ".wh.a b"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestXattrEscaping(t *testing.T) {
	for _, x := range []*Xattrs{Trusted, User} {
		p := x.Prefix
		cases := []struct {
			stored, shown string
			visible       bool
		}{
			{"user.mime", "user.mime", true},
			{"security.capability", "security.capability", true},
			{p + "opaque", "", false},
			{p + "origin", "", false},
			{p + "overlay.opaque", p + "opaque", true},
			{p + "overlay.overlay.x", p + "overlay.x", true},
		}
		for _, c := range cases {
			shown, ok := x.Unescape(c.stored)
			if ok != c.visible || shown != c.shown {
				t.Errorf("%s: Unescape(%q) = %q, %v; want %q, %v", p, c.stored, shown, ok, c.shown, c.visible)
			}
			if x.IsPrivate(c.stored) == c.visible {
				t.Errorf("%s: IsPrivate(%q) = %v", p, c.stored, !c.visible)
			}
			if c.visible {
				if back := x.Escape(shown); back != c.stored {
					t.Errorf("%s: Escape(%q) = %q, want %q", p, shown, back, c.stored)
				}
			}
		}
	}
}

func TestIsPrivateXattr(t *testing.T) {
	for name, want := range map[string]bool{
		"trusted.overlay.opaque":         true,
		"user.overlay.whiteout":          true,
		"trusted.overlay.overlay.mine":   true,
		"trusted.overlayfoo":             false,
		"user.mime":                      false,
		"security.capability":            false,
		"system.posix_acl_access":        false,
		"user.overlay":                   false,
		"trusted.overlay.":               true,
		"TRUSTED.overlay.opaque":         false,
		"user.overlay.overlay.whiteout":  true,
		"trusted.user.overlay.whiteout":  false,
		"security.overlay.opaque":        false,
		"user.overlaymeta.opaque.wh.x":   false,
		"trusted.overlay.redirect/x/y/z": true,
	} {
		if got := IsPrivateXattr(name); got != want {
			t.Errorf("IsPrivateXattr(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestIsWhiteout(t *testing.T) {
	for _, c := range []struct {
		name   string
		st     unix.Stat_t
		dev    bool // IsWhiteout
		maybeX bool // MayBeXattrWhiteout
	}{
		{"char 0/0", unix.Stat_t{Mode: unix.S_IFCHR}, true, false},
		{"char 1/3", unix.Stat_t{Mode: unix.S_IFCHR | 0o666, Rdev: unix.Mkdev(1, 3)}, false, false},
		{"block 0/0", unix.Stat_t{Mode: unix.S_IFBLK}, false, false},
		{"empty file", unix.Stat_t{Mode: unix.S_IFREG}, false, true},
		{"file", unix.Stat_t{Mode: unix.S_IFREG, Size: 1}, false, false},
		{"dir", unix.Stat_t{Mode: unix.S_IFDIR}, false, false},
		{"fifo", unix.Stat_t{Mode: unix.S_IFIFO}, false, false},
	} {
		if got := IsWhiteout(&c.st); got != c.dev {
			t.Errorf("%s: IsWhiteout = %v, want %v", c.name, got, c.dev)
		}
		if got := MayBeXattrWhiteout(&c.st); got != c.maybeX {
			t.Errorf("%s: MayBeXattrWhiteout = %v, want %v", c.name, got, c.maybeX)
		}
	}
}

func TestAufs(t *testing.T) {
	for _, c := range []struct {
		name   string
		aufs   bool
		hidden string
		ok     bool
	}{
		{"file", false, "", false},
		{".wh.file", true, "file", true},
		{".wh..hidden", true, ".hidden", true},
		{".wh..wh..opq", true, "", false},
		{".wh..wh.plnk", true, "", false},
		{".wh.", true, "", false},
		{"a.wh.b", false, "", false},
	} {
		if got := IsAufsName(c.name); got != c.aufs {
			t.Errorf("IsAufsName(%q) = %v, want %v", c.name, got, c.aufs)
		}
		if h, ok := AufsHidden(c.name); h != c.hidden || ok != c.ok {
			t.Errorf("AufsHidden(%q) = %q, %v; want %q, %v", c.name, h, ok, c.hidden, c.ok)
		}
	}
}

// TestMake makes both kinds of whiteout and reads them back.
func TestMake(t *testing.T) {
	dir := t.TempDir()
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)
	if err := MakeWhiteout(d, "dev"); errors.Is(err, unix.EPERM) {
		t.Logf("no character device whiteouts here: %v", err)
	} else if err != nil {
		t.Fatal(err)
	} else {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, "dev"), &st); err != nil || !IsWhiteout(&st) {
			t.Errorf("MakeWhiteout made mode %o rdev %d (%v), want a whiteout", st.Mode, st.Rdev, err)
		}
	}
	f, err := os.CreateTemp(dir, "probe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	x, err := ProbeNamespace(int(f.Fd()))
	if err != nil {
		t.Skipf("no overlay attributes on %s: %v", dir, err)
	}
	if err := x.MakeXattrWhiteout(d, "x"); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "x"), &st); err != nil || !MayBeXattrWhiteout(&st) {
		t.Errorf("MakeXattrWhiteout made mode %o size %d (%v)", st.Mode, st.Size, err)
	}
	var buf [2]byte
	if n, err := unix.Lgetxattr(filepath.Join(dir, "x"), x.Whiteout, buf[:]); err != nil || string(buf[:n]) != Yes {
		t.Errorf("%s = %q, %v; want %q", x.Whiteout, buf[:n], err, Yes)
	}
	if os.Geteuid() == 0 && x != Trusted {
		t.Logf("root probed %s (a user namespace?)", x.Namespace)
	}
}
