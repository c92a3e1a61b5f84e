package mountopts

import (
	"reflect"
	"strings"
	"testing"

	"github.com/unionfuse/unionfuse/fs"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want Options
	}{
		{"fuse-overlayfs form", []string{"lowerdir=/l1:/l2,upperdir=/u,workdir=/w"},
			Options{Config: fs.Config{Lowers: []string{"/l1", "/l2"}, Upper: "/u", Work: "/w"}}},
		{"mount.fuse3 form", []string{"rw,lowerdir=/l,upperdir=/u,workdir=/w,dev,suid"},
			Options{Config: fs.Config{Lowers: []string{"/l"}, Upper: "/u", Work: "/w"}, Generic: []string{"dev", "suid"}}},
		{"read-only", []string{"lowerdir=/a:/b:/c,ro"},
			Options{Config: fs.Config{Lowers: []string{"/a", "/b", "/c"}}, ReadOnly: true}},
		{"generic flags", []string{"lowerdir=/l,nodev,nosuid,noexec,noatime"},
			Options{Config: fs.Config{Lowers: []string{"/l"}}, Generic: []string{"nodev", "nosuid", "noexec", "noatime"}}},
		{"last of a pair wins", []string{"nodev,nosuid,noexec,noatime,ro,lowerdir=/l,dev,suid,exec,atime,rw,nosuid"},
			Options{Config: fs.Config{Lowers: []string{"/l"}}, Generic: []string{"dev", "exec", "atime", "nosuid"}}},
		{"userxattr", []string{"lowerdir=/l,userxattr"},
			Options{Config: fs.Config{Lowers: []string{"/l"}, UserXattr: true}}},
		{"empty items ignored", []string{",,lowerdir=/l,,ro,"},
			Options{Config: fs.Config{Lowers: []string{"/l"}}, ReadOnly: true}},
		{"escaped colon", []string{`lowerdir=/a\:b:/c`},
			Options{Config: fs.Config{Lowers: []string{"/a:b", "/c"}}}},
		{"escaped comma and backslash", []string{`lowerdir=/a\,b:/c\\d,upperdir=/u\:1,workdir=/w`},
			Options{Config: fs.Config{Lowers: []string{"/a,b", `/c\d`}, Upper: "/u:1", Work: "/w"}}},
		{"equals sign in path", []string{"lowerdir=/a=b"},
			Options{Config: fs.Config{Lowers: []string{"/a=b"}}}},
		{"several -o accumulate", []string{"lowerdir=/l", "upperdir=/u", "workdir=/w,nodev"},
			Options{Config: fs.Config{Lowers: []string{"/l"}, Upper: "/u", Work: "/w"}, Generic: []string{"nodev"}}},
		{"last lowerdir wins", []string{"lowerdir=/old", "lowerdir=/new"},
			Options{Config: fs.Config{Lowers: []string{"/new"}}}},
		{"fstab keywords ignored", []string{"defaults,noauto,nofail,_netdev,x-systemd.requires=/x,lowerdir=/l"},
			Options{Config: fs.Config{Lowers: []string{"/l"}}}},
		{"union server of a root", []string{`lowerdir=/l,server=/srv/a\,b`},
			Options{Config: fs.Config{Lowers: []string{"/l"}}, Server: "/srv/a,b"}},
		{"bare union server", []string{"server,lowerdir=/l"},
			Options{Config: fs.Config{Lowers: []string{"/l"}}, Server: "/"}},
		{"nothing", []string{""}, Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in...)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.in, *got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in      []string
		mention string // the error must name this
	}{
		{[]string{"lowerdir=/l,bogus"}, `"bogus"`},
		{[]string{"lowerdir=/l,bogus=1"}, `"bogus=1"`},
		{[]string{"lowerdir"}, `"lowerdir"`},
		{[]string{"lowerdir="}, `"lowerdir="`},
		{[]string{"upperdir,lowerdir=/l"}, `"upperdir"`},
		{[]string{"lowerdir=/a:::/b"}, "colons"},
		{[]string{"lowerdir=/a:"}, "empty layer path"},
		{[]string{"lowerdir=/l,upperdir=/u"}, "workdir"},
		{[]string{"lowerdir=/l,workdir=/w"}, "upperdir"},
		{[]string{"lowerdir=/l,ro=1"}, `"ro=1"`},
		{[]string{"lowerdir=/l", "nodev=yes"}, `"nodev=yes"`},
		{[]string{"lowerdir=/l,allow_others"}, `"allow_others"`},
		{[]string{"lowerdir=/l,server="}, `"server="`},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in...)
		if err == nil {
			t.Errorf("Parse(%q): no error", tt.in)
			continue
		}
		if !strings.Contains(err.Error(), tt.mention) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q) = %q, want one line naming %s", tt.in, err, tt.mention)
		}
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name                string
		opts                Options
		lowers              []string
		upper, work         string
		mountOpts           []string
		userXattr, readOnly bool
	}{
		{"read-write", Options{Config: fs.Config{Lowers: []string{"/a", "/b"}, Upper: "/u", Work: "/w"}, Generic: []string{"nodev"}},
			[]string{"/a", "/b"}, "/u", "/w", []string{"nodev"}, false, false},
		{"read-only lowers", Options{Config: fs.Config{Lowers: []string{"/a"}}, ReadOnly: true},
			[]string{"/a"}, "", "", []string{"ro"}, false, true},
		{"ro with upper shows upper on top", Options{Config: fs.Config{Lowers: []string{"/a"}, Upper: "/u", Work: "/w"}, ReadOnly: true},
			[]string{"/u", "/a"}, "", "", []string{"ro"}, false, true},
		{"userxattr", Options{Config: fs.Config{Lowers: []string{"/a"}, Upper: "/u", Work: "/w", UserXattr: true}, Generic: []string{"nosuid", "noexec", "noatime"}},
			[]string{"/a"}, "/u", "/w", []string{"nosuid", "noexec", "noatime"}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.opts.FsConfig()
			if !reflect.DeepEqual(cfg.Lowers, tt.lowers) || cfg.Upper != tt.upper || cfg.Work != tt.work {
				t.Errorf("layers = %q %q %q, want %q %q %q", cfg.Lowers, cfg.Upper, cfg.Work, tt.lowers, tt.upper, tt.work)
			}
			if !reflect.DeepEqual(cfg.MountOptions, tt.mountOpts) {
				t.Errorf("MountOptions = %q, want %q", cfg.MountOptions, tt.mountOpts)
			}
			if cfg.UserXattr != tt.userXattr || cfg.ReadOnly() != tt.readOnly {
				t.Errorf("UserXattr %v ReadOnly %v, want %v %v", cfg.UserXattr, cfg.ReadOnly(), tt.userXattr, tt.readOnly)
			}
		})
	}
}

func TestSplitLowerdir(t *testing.T) {
	tests := []struct {
		in         string
		want, data []string
		ok         bool
	}{
		{"/a", []string{"/a"}, nil, true},
		{"a:b:c", []string{"a", "b", "c"}, nil, true},
		{`/x\:y:/z`, []string{"/x:y", "/z"}, nil, true},
		{"a::b", []string{"a"}, []string{"b"}, true},
		{"a:b::d1::d2", []string{"a", "b"}, []string{"d1", "d2"}, true},
		{`a::d\:1`, []string{"a"}, []string{"d:1"}, true},
		{"", nil, nil, false},
		{":a", nil, nil, false},
		{"a:", nil, nil, false},
		{"a::", nil, nil, false},
		{"a:::b", nil, nil, false},
		{"a::d:b", nil, nil, false}, // a regular layer after a data layer
	}
	for _, tt := range tests {
		got, data, err := SplitLowerdir(tt.in)
		if (err == nil) != tt.ok || !reflect.DeepEqual(got, tt.want) || !reflect.DeepEqual(data, tt.data) {
			t.Errorf("SplitLowerdir(%q) = %q, %q, %v; want %q, %q, ok=%v", tt.in, got, data, err, tt.want, tt.data, tt.ok)
		}
	}
}

func TestLowerdirAdd(t *testing.T) {
	tests := []struct {
		opts       string
		want, data []string
		ok         bool
	}{
		{"lowerdir+=a,lowerdir+=b,datadir+=d", []string{"a", "b"}, []string{"d"}, true},
		{"lowerdir=x::y,metacopy=on", []string{"x"}, []string{"y"}, true},
		{"datadir+=d,lowerdir+=a", nil, nil, false},
		{"lowerdir=a,lowerdir+=b", nil, nil, false},
		{"lowerdir+=a,lowerdir=b", []string{"b"}, nil, true},
		{"metacopy=maybe,lowerdir=a", nil, nil, false},
	}
	for _, tt := range tests {
		o, err := Parse(tt.opts)
		if (err == nil) != tt.ok {
			t.Errorf("Parse(%q): %v, want ok=%v", tt.opts, err, tt.ok)
			continue
		}
		if err != nil {
			continue
		}
		cfg := o.FsConfig()
		if !reflect.DeepEqual(cfg.Lowers, tt.want) || len(cfg.DataLowers) != len(tt.data) || len(tt.data) > 0 && !reflect.DeepEqual(cfg.DataLowers, tt.data) {
			t.Errorf("Parse(%q): lowers %q data %q, want %q %q", tt.opts, cfg.Lowers, cfg.DataLowers, tt.want, tt.data)
		}
	}
}

func TestConfigWithoutUpperIsReadOnly(t *testing.T) {
	o := Options{Config: fs.Config{Lowers: []string{"/a"}}, Generic: []string{"nodev"}}
	if got := o.FsConfig().MountOptions; !reflect.DeepEqual(got, []string{"ro", "nodev"}) {
		t.Errorf("MountOptions = %q, want [ro nodev]", got)
	}
}

func TestFuseOverlayfsOptions(t *testing.T) {
	o, err := Parse(`lowerdir=l1:l2,upperdir=u,workdir=w,,volatile,uidmapping=:0:1000:1:1:100000:65536,gidmapping=0:1000:1,squash_to_uid=5,static_nlink,noacl,xino=off,allow_other,context="system_u:object_r:container_file_t:s0:c1,c2",xattr_permissions=0,redirect_dir=off,passthrough=off`)
	if err != nil {
		t.Fatal(err)
	}
	cfg := o.FsConfig()
	wantU := []fs.IDMap{{Outside: 0, Inside: 1000, Len: 1}, {Outside: 1, Inside: 100000, Len: 65536}}
	if !reflect.DeepEqual(cfg.UIDMap, wantU) || len(cfg.GIDMap) != 1 {
		t.Errorf("maps %v %v", cfg.UIDMap, cfg.GIDMap)
	}
	if cfg.SquashUID == nil || *cfg.SquashUID != 5 || cfg.SquashGID != nil {
		t.Errorf("squash %v %v", cfg.SquashUID, cfg.SquashGID)
	}
	if !cfg.NoFsync || !cfg.StaticNlink || !cfg.NoACL || !cfg.XinoOff || !cfg.AllowOther || !cfg.NoPassthrough {
		t.Errorf("flags not all set: %+v", cfg)
	}
	if cfg.Redirect != fs.RedirectOff {
		t.Errorf("redirect_dir=off gave %v", cfg.Redirect)
	}
	for _, mode := range []fs.RedirectMode{fs.RedirectOn, fs.RedirectFollow, fs.RedirectOff, fs.RedirectNoFollow} {
		o, err := Parse("redirect_dir=" + mode.String())
		if err != nil || o.FsConfig().Redirect != mode {
			t.Errorf("redirect_dir=%s: %v, %v", mode, o, err)
		}
	}
	if o, err := Parse("index=on"); err != nil || !o.FsConfig().Index {
		t.Errorf("index=on: %v, %v", o, err)
	}
	if _, err := Parse("index=maybe"); err == nil {
		t.Error("index=maybe accepted")
	}
	for opt, want := range map[string]fs.WritebackMode{"lowerdir=l": fs.WritebackAuto, "writeback=auto": fs.WritebackAuto, "writeback=on": fs.WritebackOn, "writeback=off": fs.WritebackOff} {
		if o, err := Parse(opt); err != nil || o.FsConfig().Writeback != want {
			t.Errorf("%s: %v, %v; want Writeback %d", opt, o, err, want)
		}
	}
	for opt, want := range map[string]int{"max_nodes=100": 100, "max_nodes=0": -1} {
		if o, err := Parse(opt); err != nil || o.FsConfig().MaxNodes != want {
			t.Errorf("%s: %v, %v; want MaxNodes %d", opt, o, err, want)
		}
	}
	for _, bad := range []string{"max_nodes=-1", "max_nodes=many", "max_nodes"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if o, _ := Parse("lowerdir=l"); o.FsConfig().Redirect != fs.RedirectOn {
		t.Errorf("redirect_dir is %v by default, want on", o.FsConfig().Redirect)
	}
	if !reflect.DeepEqual(cfg.Lowers, []string{"l1", "l2"}) || cfg.Upper != "u" || cfg.Work != "w" {
		t.Errorf("layers %v %s %s", cfg.Lowers, cfg.Upper, cfg.Work)
	}
	for _, bad := range []string{
		"uidmapping=0:1000", "uidmapping=0:x:1", "uidmapping=0:1:0", "squash_to_uid=me",
		"fsync=2", "xino=maybe", "redirect_dir=yes", "xattr_permissions=1", "static_nlink=1", "context", "passthrough=maybe", "writeback=maybe", "writeback",
	} {
		if _, err := Parse("lowerdir=l," + bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
