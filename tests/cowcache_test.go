package tests

// Integration tests of the layer store (cowcache) and its commands: a real
// root filesystem (Debian's busybox-static laid out as a rootfs) imported
// through the CLI, the inspection commands' output, layers shared between
// images stored once, and images mounted read-only with unionfuse and with
// the kernel's overlayfs from the store's own short links.

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// busyboxPath is where Debian's busybox-static puts the binary.
const busyboxPath = "/bin/busybox"

// busyboxRootfs returns a gzipped root filesystem tarball: /bin/busybox,
// a symbolic link in /bin for each of its applets, /etc/passwd,
// /etc/group, /tmp and /root. It is made once per test process. It skips
// t when busybox-static is missing.
func busyboxRootfs(t testing.TB) []byte {
	t.Helper()
	busybox.Lock()
	defer busybox.Unlock()
	if busybox.tarball != nil {
		return busybox.tarball
	}
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		t.Skipf("needs Debian's busybox-static (%s): %v", busyboxPath, err)
	}
	out, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		t.Skipf("%s --list: %v", busyboxPath, err)
	}
	items := []testutil.Item{
		{Path: "bin", Kind: 'd'}, {Path: "etc", Kind: 'd'}, {Path: "root", Kind: 'd', Mode: 0o700}, {Path: "tmp", Kind: 'd', Mode: 0o1777},
		{Path: "bin/busybox", Kind: 'f', Data: string(bin), Mode: 0o755},
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			items = append(items, testutil.Item{Path: "bin/" + applet, Kind: 'l', Data: "busybox"})
		}
	}
	items = append(items, testutil.Spec("etc/passwd=root:x:0:0:root:/root:/bin/sh\n", "etc/group=root:x:0:\n")...)
	busybox.tarball = testutil.Gzip(testutil.Tar(t, items))
	return busybox.tarball
}

// busybox holds busyboxRootfs's tarball once made.
var busybox struct {
	sync.Mutex
	tarball []byte
}

// busyboxStore makes a store with busybox:latest imported through the
// CLI, and returns its root. When t ends, nothing may be left mounted
// below it.
func busyboxStore(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "store")
	mustOK(t, "import", storeCLI(t, root, "import", "-q", busyboxFile(t), "busybox:latest"))
	t.Cleanup(func() { checkNoMountsUnder(t, root) })
	return root
}

// busyboxFile writes busyboxRootfs's tarball to a fresh directory and
// returns its path.
func busyboxFile(t testing.TB) string {
	t.Helper()
	return writeTemp(t, "busybox.tar.gz", busyboxRootfs(t))
}

// writeTemp writes b to a file in a fresh directory and returns its path.
func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// storeCLI runs unionfuse with --root root after the subcommand.
func storeCLI(t testing.TB, root string, args ...string) result {
	t.Helper()
	return cli(t, append([]string{args[0], "--root", root}, args[1:]...)...)
}

func TestCowcacheImportBusybox(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	tarball := busyboxFile(t)
	r := storeCLI(t, root, "import", tarball, "busybox:1.35")
	mustOK(t, "import", r)
	id := strings.TrimSpace(r.stdout)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("import printed %q, want an image id", id)
	}
	short := id[7:19]

	r = storeCLI(t, root, "images")
	mustOK(t, "images", r)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !regexp.MustCompile(`^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^busybox\s+1\.35\s+`+short+`\s+.*ago\s+[0-9.]+MB$`).MatchString(lines[1]) {
		t.Errorf("images:\n%s", r.stdout)
	}
	if r = storeCLI(t, root, "images", "-q"); strings.TrimSpace(r.stdout) != short {
		t.Errorf("images -q: %q", r.stdout)
	}
	r = storeCLI(t, root, "images", "--format", "json")
	var row struct{ Repository, Tag, ID, Size string }
	if err := json.Unmarshal([]byte(r.stdout), &row); err != nil || row.Repository != "busybox" || row.ID != short {
		t.Errorf("images --format json: %q (%v)", r.stdout, err)
	}

	r = storeCLI(t, root, "history", "busybox:1.35")
	mustOK(t, "history", r)
	lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "IMAGE ") || !strings.HasPrefix(lines[1], short) ||
		!strings.Contains(lines[1], "Imported from "+tarball) {
		t.Errorf("history:\n%s", r.stdout)
	}

	r = storeCLI(t, root, "inspect", "busybox:1.35")
	mustOK(t, "inspect", r)
	var ins []struct {
		ID          string `json:"Id"`
		GraphDriver struct{ Data map[string]string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &ins); err != nil || len(ins) != 1 || ins[0].ID != id {
		t.Fatalf("inspect: %v\n%s", err, r.stdout)
	}
	upper := ins[0].GraphDriver.Data["UpperDir"]
	if _, hasLower := ins[0].GraphDriver.Data["LowerDir"]; hasLower || !strings.HasPrefix(upper, root+"/layers/") {
		t.Errorf("GraphDriver.Data of a one-layer image: %v", ins[0].GraphDriver.Data)
	}
	got, err := os.ReadFile(filepath.Join(upper, "bin", "busybox"))
	want, _ := os.ReadFile(busyboxPath)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("the layer's bin/busybox differs from %s (%v)", busyboxPath, err)
	}
	if link, err := os.Readlink(filepath.Join(upper, "bin", "sh")); err != nil || link != "busybox" {
		t.Errorf("bin/sh -> %q, %v", link, err)
	}

	// Refused input leaves the store as it was, with the entry named.
	evil := writeTemp(t, "evil.tar", testutil.Tar(t, testutil.Spec("../../etc/evil=x")))
	r = storeCLI(t, root, "import", evil, "evil")
	if r.code != 1 || !strings.Contains(r.stderr, `"../../etc/evil"`) {
		t.Errorf("import of a hostile tarball: exit %d, stderr %q", r.code, r.stderr)
	}
	if r = storeCLI(t, root, "images", "-q"); strings.TrimSpace(r.stdout) != short {
		t.Errorf("after the refused import: %q", r.stdout)
	}
	if r = storeCLI(t, root, "history", "nosuch"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("history nosuch: exit %d, %q", r.code, r.stderr)
	}

	r = storeCLI(t, root, "rmi", "busybox:1.35")
	mustOK(t, "rmi", r)
	if !strings.Contains(r.stdout, "Untagged: busybox:1.35") || strings.Count(r.stdout, "Deleted: ") != 2 {
		t.Errorf("rmi:\n%s", r.stdout)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "layers")); len(ents) != 0 {
		t.Errorf("%d layers left after rmi", len(ents))
	}
}

// twoImages makes, in the store at root, busybox (one layer) and app (the
// same layer plus one that adds /app/hello.txt and deletes /etc/group).
func twoImages(t *testing.T, root string) (base, app cowcache.Image) {
	t.Helper()
	return imageOnBusybox(t, root, "acme/app:1.0", "/bin/sh -c #(nop) COPY dir:app in /app",
		testutil.Spec("app/", "app/hello.txt=hello world\n", "etc/", "etc/group!wh"))
}

// imageOnBusybox makes, in the store at root, busybox (one layer) and the
// image ref: busybox's layer and one of items, made by createdBy.
func imageOnBusybox(t *testing.T, root, ref, createdBy string, items []testutil.Item) (base, img cowcache.Image) {
	t.Helper()
	testutil.RequireRoot(t, "the image's layer holds a whiteout (mknod 0/0)")
	s, err := cowcache.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if base, err = s.Import(bytes.NewReader(busyboxRootfs(t)), "busybox", "busybox.tar.gz"); err != nil {
		t.Fatal(err)
	}
	img, err = s.AppendLayer(&base, bytes.NewReader(testutil.Tar(t, items)), ref, v1.History{CreatedBy: createdBy})
	if err != nil {
		t.Fatal(err)
	}
	return base, img
}

func TestCowcacheSharedLayersStoredOnce(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	base, app := twoImages(t, root)
	if app.Layers[0] != base.Layers[0] || len(app.Layers) != 2 {
		t.Fatalf("layers: base %v, app %v", base.Layers, app.Layers)
	}
	ents, _ := os.ReadDir(filepath.Join(root, "layers"))
	if len(ents) != 2 {
		t.Errorf("%d layer directories, want 2", len(ents))
	}
	// Both images' busybox is one inode: the same file on disk.
	inode := func(ref string) uint64 {
		r := storeCLI(t, root, "inspect", ref)
		var ins []struct {
			GraphDriver struct{ Data map[string]string }
		}
		json.Unmarshal([]byte(r.stdout), &ins)
		if len(ins) != 1 {
			t.Fatalf("inspect %s: %s %s", ref, r.stdout, r.stderr)
		}
		data := ins[0].GraphDriver.Data
		dir := data["UpperDir"]
		if ref == "acme/app:1.0" {
			dir = data["LowerDir"]
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, "bin", "busybox"), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	if a, b := inode("busybox"), inode("acme/app:1.0"); a != b {
		t.Errorf("busybox is inode %d in one image and %d in the other", a, b)
	}

	r := storeCLI(t, root, "history", "acme/app:1.0")
	mustOK(t, "history", r)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], app.ID.Short()) || !strings.Contains(lines[1], "COPY dir:app") ||
		!strings.HasPrefix(lines[2], base.ID.Short()) {
		t.Errorf("history (newest first, the base's id on its step):\n%s", r.stdout)
	}

	r = storeCLI(t, root, "system", "df", "-v")
	mustOK(t, "system df", r)
	if !regexp.MustCompile(`(?m)^acme/app\s+1\.0\s+` + app.ID.Short() + `\s+.*\s+[0-9.]+MB\s+[0-9.]+MB\s+12B\s+0$`).MatchString(r.stdout) {
		t.Errorf("system df -v (app shares busybox, unique 12B):\n%s", r.stdout)
	}

	// Removing the base keeps its layer: app still uses it.
	r = storeCLI(t, root, "rmi", "busybox")
	mustOK(t, "rmi busybox", r)
	if strings.Count(r.stdout, "Deleted: ") != 1 {
		t.Errorf("rmi busybox deleted layers too:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(root, "layers", base.Layers[0].Hex(), "diff", "bin", "busybox")); err != nil {
		t.Errorf("the shared layer is gone: %v", err)
	}
}

// mountedApp makes twoImages in a fresh store and mounts acme/app:1.0 with
// mount-image. It returns the store's root, the mountpoint (unmounted at
// the end of the test if need be), the images and the mount's daemon.
func mountedApp(t *testing.T) (root, merged string, base, app cowcache.Image, rec daemon.Record) {
	t.Helper()
	testutil.RequireFuse(t)
	root = filepath.Join(t.TempDir(), "store")
	base, app = twoImages(t, root)
	merged = filepath.Join(t.TempDir(), "merged")
	os.Mkdir(merged, 0o755)
	cleanupMount(t, merged)
	mustOK(t, "mount-image", storeCLI(t, root, "mount-image", "acme/app:1.0", merged))
	return root, merged, base, app, daemonOf(t, merged)
}

func TestCowcacheMountImage(t *testing.T) {
	root, merged, _, app, rec := mountedApp(t)
	checkImageView(t, merged)
	if err := os.WriteFile(filepath.Join(merged, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write into the image: %v, want EROFS", err)
	}
	umountCLI(t, merged, rec)

	// The same layers mount with the kernel's overlayfs through the
	// store's short links, as lowerdir= of the top layer plus its lower.
	if b, err := os.ReadFile("/proc/filesystems"); err != nil || !strings.Contains(string(b), "\toverlay\n") {
		t.Skip("kernel overlayfs not available for the second half")
	}
	top := filepath.Join(root, "layers", app.Layers[1].Hex())
	link, _ := os.ReadFile(filepath.Join(top, "link"))
	lower, _ := os.ReadFile(filepath.Join(top, "lower"))
	var lowers []string
	for _, l := range append([]string{"l/" + string(link)}, strings.Split(string(lower), ":")...) {
		lowers = append(lowers, filepath.Join(root, l))
	}
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(lowers, ":")); err != nil {
		t.Fatalf("mount -t overlay: %v", err)
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	checkImageView(t, merged)
	if err := unix.Unmount(merged, 0); err != nil {
		t.Errorf("umount overlay: %v", err)
	}
}

// checkImageView checks the merged view of acme/app:1.0: files of both
// layers, the deleted /etc/group hidden.
func checkImageView(t *testing.T, merged string) {
	t.Helper()
	want, _ := os.ReadFile(busyboxPath)
	if got, err := os.ReadFile(filepath.Join(merged, "bin", "busybox")); err != nil || !bytes.Equal(got, want) {
		t.Errorf("bin/busybox (bottom layer): %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(merged, "app", "hello.txt")); err != nil || string(got) != "hello world\n" {
		t.Errorf("app/hello.txt (top layer): %q %v", got, err)
	}
	if got, err := os.ReadFile(filepath.Join(merged, "etc", "passwd")); err != nil || !strings.HasPrefix(string(got), "root:") {
		t.Errorf("etc/passwd (bottom layer): %q %v", got, err)
	}
	if _, err := os.Lstat(filepath.Join(merged, "etc", "group")); !os.IsNotExist(err) {
		t.Errorf("etc/group was deleted by the top layer, lstat: %v", err)
	}
	if link, err := os.Readlink(filepath.Join(merged, "bin", "sh")); err != nil || link != "busybox" {
		t.Errorf("bin/sh -> %q %v", link, err)
	}
}

// imageIDs returns "NAME ID MANIFEST" lines of the images in the store at
// root, sorted, for comparing stores.
func imageIDs(t *testing.T, root string) string {
	t.Helper()
	s, err := cowcache.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	images, err := s.Images()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, img := range images {
		lines = append(lines, strings.Join(img.Names, ",")+" "+string(img.ID)+" "+string(img.Manifest))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestCowcacheSaveLoadRoundTrip(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	twoImages(t, root)
	want := imageIDs(t, root)
	dir := t.TempDir()
	docker, oci := filepath.Join(dir, "images.tar"), filepath.Join(dir, "images-oci.tar")
	mustOK(t, "save", storeCLI(t, root, "save", "-o", docker, "busybox", "acme/app:1.0"))
	mustOK(t, "save --format oci", storeCLI(t, root, "save", "--format", "oci", "-o", oci, "busybox", "acme/app:1.0"))
	if r := storeCLI(t, root, "save", "-o", filepath.Join(dir, "x.tar"), "nosuch"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("save nosuch: exit %d, %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.tar")); !os.IsNotExist(err) {
		t.Errorf("a failed save left its output: %v", err)
	}

	for _, in := range []string{docker, oci} {
		r2 := filepath.Join(t.TempDir(), "store")
		r := storeCLI(t, r2, "load", "-i", in)
		mustOK(t, "load "+in, r)
		if r.stdout != "Loaded image: busybox:latest\nLoaded image: acme/app:1.0\n" &&
			r.stdout != "Loaded image: acme/app:1.0\nLoaded image: busybox:latest\n" {
			t.Errorf("load printed %q", r.stdout)
		}
		if got := imageIDs(t, r2); got != want {
			t.Errorf("after save and load of %s:\n%s\nwant\n%s", filepath.Base(in), got, want)
		}
		if ents, _ := os.ReadDir(filepath.Join(r2, "layers")); len(ents) != 2 {
			t.Errorf("%d layers, want 2 (one shared)", len(ents))
		}
	}
	// From standard input, as docker load < FILE.
	r2 := filepath.Join(t.TempDir(), "store")
	f, err := os.Open(oci)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(unionfuseBinary(t), "load", "--root", r2, "-q")
	cmd.Stdin = f
	mustOK(t, "load < "+oci, run(t, cmd))
	if got := imageIDs(t, r2); got != want {
		t.Errorf("after load from standard input:\n%s\nwant\n%s", got, want)
	}
	if ents, _ := os.ReadDir(filepath.Join(r2, "tmp")); len(ents) != 0 {
		t.Errorf("load from standard input left %d entries in tmp/", len(ents))
	}
}

// TestCowcacheSkopeo uses skopeo (Debian's package) as an independent
// reader and writer of both archive formats: what unionfuse saves, skopeo
// copies; what skopeo writes, unionfuse loads, with the same digests.
func TestCowcacheSkopeo(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("needs skopeo (apt-get install skopeo) as an independent reader of the archives")
	}
	root := filepath.Join(t.TempDir(), "store")
	r := storeCLI(t, root, "import", busyboxFile(t), "busybox:1.35")
	mustOK(t, "import", r)
	want := imageIDs(t, root) // "busybox:1.35 ID MANIFEST"
	_, manifest, _ := strings.Cut(strings.TrimPrefix(want, "busybox:1.35 "), " ")
	dir := t.TempDir()
	sk := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(skopeo, append([]string{"--insecure-policy"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	mustOK(t, "save", storeCLI(t, root, "save", "--format", "oci", "-o", filepath.Join(dir, "bb-oci.tar"), "busybox:1.35"))
	mustOK(t, "save", storeCLI(t, root, "save", "-o", filepath.Join(dir, "bb.tar"), "busybox:1.35"))
	if out := sk("inspect", "--raw", "oci-archive:"+filepath.Join(dir, "bb-oci.tar")); string(cowcache.FromBytes([]byte(out))) != manifest {
		t.Errorf("skopeo reads manifest %s, want %s", cowcache.FromBytes([]byte(out)), manifest)
	}
	sk("copy", "-q", "oci-archive:"+filepath.Join(dir, "bb-oci.tar"), "oci:"+filepath.Join(dir, "oci")+":busybox:1.35")
	sk("copy", "-q", "docker-archive:"+filepath.Join(dir, "bb.tar"), "docker-archive:"+filepath.Join(dir, "sk.tar")+":busybox:1.35")
	sk("copy", "-q", "oci:"+filepath.Join(dir, "oci")+":busybox:1.35", "oci-archive:"+filepath.Join(dir, "sk-oci.tar")+":busybox:1.35")
	for _, in := range []string{"oci", "sk.tar", "sk-oci.tar"} {
		r2 := filepath.Join(t.TempDir(), "store")
		mustOK(t, "load "+in, storeCLI(t, r2, "load", "-i", filepath.Join(dir, in)))
		got, exp := imageIDs(t, r2), want
		if in == "sk.tar" { // a docker-archive keeps no manifest: compare ids
			got, exp = got[:strings.LastIndex(got, " ")], exp[:strings.LastIndex(exp, " ")]
		}
		if got != exp {
			t.Errorf("load of skopeo's %s: %q, want %q", in, got, exp)
		}
	}
}

// TestCowcacheFullAndReadOnlyRoot puts the store on a 2 MiB tmpfs: the
// busybox layer does not fit. Import and load fail with one line saying
// so and leave nothing behind; a small image still fits afterwards. Then
// the filesystem is made read-only: reading works, writing fails clearly.
func TestCowcacheFullAndReadOnlyRoot(t *testing.T) {
	testutil.RequireRoot(t, "mounts a small tmpfs")
	bb := busyboxFile(t)
	big := filepath.Join(t.TempDir(), "store")
	mustOK(t, "import", storeCLI(t, big, "import", bb, "busybox"))
	oci := filepath.Join(t.TempDir(), "bb-oci.tar")
	mustOK(t, "save", storeCLI(t, big, "save", "--format", "oci", "-o", oci, "busybox"))

	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	root := filepath.Join(mnt, "store")
	empty := func(what string) {
		t.Helper()
		for _, d := range []string{"layers", "tmp", "l"} {
			if ents, _ := os.ReadDir(filepath.Join(root, d)); len(ents) != 0 {
				t.Errorf("after %s: %d entries left in %s/", what, len(ents), d)
			}
		}
		if r := storeCLI(t, root, "images", "-q"); r.code != 0 || r.stdout != "" {
			t.Errorf("after %s: images: exit %d %q %q", what, r.code, r.stdout, r.stderr)
		}
	}
	for _, args := range [][]string{{"import", bb, "busybox"}, {"load", "-i", oci}} {
		r := storeCLI(t, root, args...)
		if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "no space left for the store "+root) {
			t.Errorf("%s on a full disk: exit %d, stderr %q", args[0], r.code, r.stderr)
		}
		empty(args[0])
	}
	mustOK(t, "import of a small image", storeCLI(t, root, "import", writeTemp(t, "small.tar", testutil.Tar(t, testutil.Spec("hello=x"))), "small"))

	if err := unix.Mount("", mnt, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	if r := storeCLI(t, root, "images", "-q"); r.code != 0 || len(strings.TrimSpace(r.stdout)) != 12 {
		t.Errorf("images on a read-only store: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	r := storeCLI(t, root, "import", bb, "busybox")
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "read-only filesystem") {
		t.Errorf("import into a read-only store: exit %d, stderr %q", r.code, r.stderr)
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Errorf("umount: %v", err)
	}
}
