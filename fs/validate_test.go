package fs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// layout is a set of layer directories made in a temp dir: l1, l2 (lowers),
// u (upper), w (work), m (mountpoint), f (a regular file).
func layout(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for _, name := range []string{"l1", "l2", "u", "w", "m", "l1/sub", "u/sub", "w/sub", "m/sub"} {
		if err := os.Mkdir(filepath.Join(d, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(d, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("l1", filepath.Join(d, "link-l1")); err != nil {
		t.Fatal(err)
	}
	return d
}

// needXattrs skips the test when the temp dir's filesystem cannot hold the
// overlay's attributes, so the good cases do not fail for the wrong reason.
func needXattrs(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "xattr-check")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	if err := unix.Setxattr(p, "trusted.overlay.probe", []byte("y"), 0); err != nil {
		t.Skipf("temp dir %s cannot hold trusted.* xattrs (%v); run as root on ext4/tmpfs", dir, err)
	}
}

func TestValidate(t *testing.T) {
	d := layout(t)
	needXattrs(t, d)
	p := func(name string) string { return filepath.Join(d, name) }
	tests := []struct {
		name    string
		cfg     Config
		merged  string
		wantErr string // "" means valid; otherwise a substring of the error
	}{
		{"read-write", Config{Lowers: []string{p("l1"), p("l2")}, Upper: p("u"), Work: p("w")}, p("m"), ""},
		{"read-only", Config{Lowers: []string{p("l1")}}, p("m"), ""},
		{"merged inside lower", Config{Lowers: []string{p("l1")}, Upper: p("u"), Work: p("w")}, p("l1/sub"), ""},
		{"merged is the lower", Config{Lowers: []string{p("l1")}}, p("l1"), ""},
		{"symlinked lower", Config{Lowers: []string{p("link-l1")}, Upper: p("u"), Work: p("w")}, p("m"), ""},
		{"no lowers", Config{Upper: p("u"), Work: p("w")}, p("m"), "no lower layer"},
		{"missing lower", Config{Lowers: []string{p("l1"), p("nope")}}, p("m"), "lower " + p("nope") + ": no such file or directory"},
		{"lower is a file", Config{Lowers: []string{p("f")}}, p("m"), "lower " + p("f") + ": not a directory"},
		{"missing upper", Config{Lowers: []string{p("l1")}, Upper: p("nope"), Work: p("w")}, p("m"), "upper " + p("nope") + ": no such file"},
		{"upper is a file", Config{Lowers: []string{p("l1")}, Upper: p("f"), Work: p("w")}, p("m"), "upper " + p("f") + ": not a directory"},
		{"missing work", Config{Lowers: []string{p("l1")}, Upper: p("u"), Work: p("nope")}, p("m"), "work " + p("nope") + ": no such file"},
		{"work is a file", Config{Lowers: []string{p("l1")}, Upper: p("u"), Work: p("f")}, p("m"), "work " + p("f") + ": not a directory"},
		{"upper without work", Config{Lowers: []string{p("l1")}, Upper: p("u")}, p("m"), "without a work directory"},
		{"work without upper", Config{Lowers: []string{p("l1")}, Work: p("w")}, p("m"), "without an upper layer"},
		{"missing mountpoint", Config{Lowers: []string{p("l1")}}, p("nope"), "mountpoint " + p("nope") + ": no such file"},
		{"mountpoint is a file", Config{Lowers: []string{p("l1")}}, p("f"), "mountpoint " + p("f") + ": not a directory"},
		{"upper inside lower", Config{Lowers: []string{p("l1")}, Upper: p("l1/sub"), Work: p("w")}, p("m"), "upper " + p("l1/sub") + " is inside lower " + p("l1")},
		{"upper is a lower", Config{Lowers: []string{p("l1")}, Upper: p("link-l1"), Work: p("w")}, p("m"), "upper " + p("l1") + " is inside lower"},
		{"work inside lower", Config{Lowers: []string{p("l2"), p("l1")}, Upper: p("u"), Work: p("l1/sub")}, p("m"), "work " + p("l1/sub") + " is inside lower " + p("l1")},
		{"lower inside upper", Config{Lowers: []string{p("u/sub")}, Upper: p("u"), Work: p("w")}, p("m"), "lower " + p("u/sub") + " is inside upper"},
		{"lower inside work", Config{Lowers: []string{p("w/sub")}, Upper: p("u"), Work: p("w")}, p("m"), "lower " + p("w/sub") + " is inside work"},
		{"upper inside merged", Config{Lowers: []string{p("l1")}, Upper: p("m/sub"), Work: p("w")}, p("m"), "upper " + p("m/sub") + " is inside the mountpoint " + p("m")},
		{"work inside merged", Config{Lowers: []string{p("l1")}, Upper: p("u"), Work: p("m/sub")}, p("m"), "work " + p("m/sub") + " is inside the mountpoint"},
		{"upper is merged", Config{Lowers: []string{p("l1")}, Upper: p("m"), Work: p("w")}, p("m"), "is inside the mountpoint"},
		{"upper and work the same", Config{Lowers: []string{p("l1")}, Upper: p("u"), Work: p("u")}, p("m"), "upper and work are the same directory " + p("u")},
		{"work inside upper", Config{Lowers: []string{p("l1")}, Upper: p("u"), Work: p("u/sub")}, p("m"), "work " + p("u/sub") + " is inside upper " + p("u")},
		{"upper inside work", Config{Lowers: []string{p("l1")}, Upper: p("w/sub"), Work: p("w")}, p("m"), "upper " + p("w/sub") + " is inside work " + p("w")},
		{"lower inside merged", Config{Lowers: []string{p("l1"), p("m/sub")}}, p("m"), "lower " + p("m/sub") + " is inside the mountpoint " + p("m")},
		{"relative paths", Config{Lowers: []string{"nope-relative"}}, p("m"), "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate(tt.merged)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: no error, want %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Validate: %q, want one line containing %q", err, tt.wantErr)
			}
		})
	}
	// Validation leaves nothing behind in work.
	if ents, _ := os.ReadDir(p("w")); len(ents) != 1 {
		t.Errorf("work has %d entries after Validate, want only sub", len(ents))
	}
}

// mountFS mounts a filesystem of fstype on a new directory in dir and
// unmounts it when the test ends. It skips the test when not root.
func mountFS(t *testing.T, dir, fstype string) string {
	t.Helper()
	testutil.RequireRoot(t, "mounts "+fstype)
	mnt, err := os.MkdirTemp(dir, fstype+"-")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(fstype, mnt, fstype, 0, ""); err != nil {
		t.Skipf("cannot mount %s: %v", fstype, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	return mnt
}

func TestValidateFilesystems(t *testing.T) {
	d := layout(t)
	p := func(name string) string { return filepath.Join(d, name) }

	t.Run("work on another filesystem", func(t *testing.T) {
		tmp := mountFS(t, d, "tmpfs")
		cfg := Config{Lowers: []string{p("l1")}, Upper: p("u"), Work: tmp}
		err := cfg.Validate(p("m"))
		want := "work " + tmp + " is on a different filesystem than upper " + p("u")
		if err == nil || err.Error() != want {
			t.Errorf("Validate: %v, want %q", err, want)
		}
	})

	t.Run("upper without xattrs", func(t *testing.T) {
		ram := mountFS(t, d, "ramfs")
		probe := filepath.Join(ram, "probe")
		if err := os.WriteFile(probe, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(probe, "trusted.overlay.probe", []byte("y"), 0); err == nil {
			t.Skip("this kernel's ramfs accepts trusted.* xattrs; no filesystem without them to test with")
		}
		os.Remove(probe)
		for _, dir := range []string{"u", "w"} {
			if err := os.Mkdir(filepath.Join(ram, dir), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, userXattr := range []bool{false, true} {
			cfg := Config{Lowers: []string{p("l1")}, Upper: filepath.Join(ram, "u"), Work: filepath.Join(ram, "w"), UserXattr: userXattr}
			err := cfg.Validate(p("m"))
			if err == nil || !strings.Contains(err.Error(), "does not support") {
				t.Errorf("Validate (userxattr %v): %v, want an error about xattr support", userXattr, err)
			}
			if ents, _ := os.ReadDir(filepath.Join(ram, "w")); len(ents) != 0 {
				t.Errorf("probe file left in work: %v", ents)
			}
		}
	})

	t.Run("mountpoint already mounted", func(t *testing.T) {
		tmp := mountFS(t, d, "tmpfs")
		cfg := Config{Lowers: []string{p("l1")}}
		err := cfg.Validate(tmp)
		want := "mountpoint " + tmp + " is already a mount point"
		if err == nil || err.Error() != want {
			t.Errorf("Validate: %v, want %q", err, want)
		}
		// The same mount reached through a symlink.
		link := filepath.Join(d, "link-mnt")
		if err := os.Symlink(tmp, link); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(link); err == nil || err.Error() != want {
			t.Errorf("Validate via symlink: %v, want %q", err, want)
		}
	})
}
