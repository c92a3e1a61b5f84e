package tests

// The layer store used by an unprivileged user: import, load and
// mount-image through fusermount3, whiteouts made without privileges and
// userxattr opaque directories.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// appImage makes, in the store at root, busybox (one layer) and
// acme/app:1.0 on top of it: a layer that adds /app/hello.txt, deletes
// /bin/ls (a whiteout) and replaces /etc by a directory holding only
// hostname (an opaque directory).
func appImage(t *testing.T, root string) cowcache.Image {
	t.Helper()
	_, app := imageOnBusybox(t, root, "acme/app:1.0", "COPY . /",
		testutil.Spec("app/", "app/hello.txt=hello world\n", "bin/ls!wh", "etc/", "etc/.wh..wh..opq=", "etc/hostname=acme\n"))
	return app
}

// TestCowcacheRootless imports, loads and mounts images as an unprivileged
// user in a store of its own: whiteouts are character devices 0/0 made
// without privileges, opaque directories are marked user.overlay.opaque,
// and mount-image (through fusermount3) shows the image's tree.
func TestCowcacheRootless(t *testing.T) {
	testutil.RequireMounts(t)
	requireTools(t, "setpriv", "fusermount3")
	bin := unionfuseBinary(t)
	rootfs := busyboxRootfs(t)
	openFuseDevice(t)
	dir := worldDir(t)
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	// A docker-archive of acme/app:1.0, saved from root's store.
	rootStore := filepath.Join(t.TempDir(), "store")
	app := appImage(t, rootStore)
	archive := filepath.Join(dir, "app.tar")
	mustOK(t, "save", storeCLI(t, rootStore, "save", "-o", archive, "acme/app:1.0"))
	flat := filepath.Join(dir, "busybox.tar.gz")
	if err := os.WriteFile(flat, rootfs, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(archive, 0o644)
	store, merged := filepath.Join(dir, "store"), filepath.Join(dir, "merged")
	cleanupMount(t, merged)

	script := strings.Join([]string{
		"set -e",
		"u() { c=$1; shift; " + bin + " \"$c\" --root " + store + " \"$@\"; }",
		"mkdir " + merged,
		"u import " + flat + " busybox:flat >/dev/null",
		"u load -i " + archive,
		"u mount-image acme/app:1.0 " + merged,
		"cd " + merged,
		"ls -A etc; cat etc/hostname app/hello.txt",
		"test -e bin/ls && echo bin/ls is still there",
		"cmp -s bin/busybox " + busyboxPath + " && echo busybox",
		"u rmi acme/app:1.0 2>&1 || echo refused",
		"cd /",
		bin + " umount " + merged,
		"u images -q | wc -l",
	}, "\n")
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+dir, "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as uid %d: %v\n%s", nobody, err, out)
	}
	want := "Loaded image: acme/app:1.0\nhostname\nacme\nhello world\nbusybox\n" +
		"unionfuse rmi: image " + app.ID.Short() + " is mounted at " + merged + ": unmount it first (unionfuse umount " + merged + ")\nrefused\n2\n"
	if string(out) != want {
		t.Errorf("as uid %d:\n%s\nwant:\n%s", nobody, out, want)
	}

	// On disk: the kernel's whiteout, the userxattr opaque marker, all
	// owned by the user.
	top := filepath.Join(store, "layers", app.Layers[1].Hex(), "diff")
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(top, "bin", "ls"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 || st.Uid != nobody {
		t.Errorf("bin/ls in the top layer is not the user's whiteout (char 0/0): %v, mode %o rdev %d uid %d", err, st.Mode, st.Rdev, st.Uid)
	}
	if v, err := getXattr(filepath.Join(top, "etc"), "user.overlay.opaque"); err != nil || v != "y" {
		t.Errorf("etc in the top layer: user.overlay.opaque = %q, %v; want y", v, err)
	}
	if v, err := getXattr(filepath.Join(top, "etc"), "trusted.overlay.opaque"); err == nil {
		t.Errorf("etc in the top layer has trusted.overlay.opaque = %q", v)
	}
}
