package tests

// Lazy pulls of eStargz images (issue 19): push --compression estargz to
// a real registry, pull through a proxy that counts bytes, and read the
// image through the union while its data arrives on demand.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unionfuse/unionfuse/internal/testutil"
)

// lazyImage is an eStargz image in a test registry, with a proxy to it.
type lazyImage struct {
	reg       *registryServer
	proxy     *regProxy
	ref       string // through the proxy
	direct    string // the same image, straight from the registry
	layerSize int64  // bytes of its one layer blob
	files     map[string][]byte
}

// pushLazyImage builds an image of busybox, a small file, a file of
// repeated bytes (/tamper) and ~30 MiB of random data (one file of
// several chunks, a hard link, a symbolic link), pushes it in eStargz and
// starts a proxy to the registry.
func pushLazyImage(t *testing.T) *lazyImage {
	t.Helper()
	reg := startRegistry(t, false)
	dir := filepath.Join(t.TempDir(), "rootfs")
	files := map[string][]byte{
		"small":      []byte("small\n"),
		"tamper":     bytes.Repeat([]byte{'A'}, 64<<10),
		"data/big":   randomBytes(t, 10<<20),
		"data/f2":    randomBytes(t, 4<<20),
		"data/f3":    randomBytes(t, 4<<20),
		"data/f4":    randomBytes(t, 4<<20),
		"data/f5":    randomBytes(t, 4<<20),
		"data/f6":    randomBytes(t, 4<<20),
		"etc/config": []byte("key=value\n"),
	}
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		t.Skipf("needs Debian's busybox-static: %v", err)
	}
	files["bin/busybox"] = bb
	for name, b := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(dir, "bin/busybox"), 0o755)
	for _, cmd := range []string{"sh", "cat", "sha256sum", "tail", "wc"} {
		os.Symlink("busybox", filepath.Join(dir, "bin", cmd))
	}
	os.Link(filepath.Join(dir, "data/big"), filepath.Join(dir, "data/big-link"))
	os.Symlink("../small", filepath.Join(dir, "etc/small-link"))
	os.Mkdir(filepath.Join(dir, "private"), 0o700)
	tarball := filepath.Join(t.TempDir(), "rootfs.tar.gz")
	if out, err := exec.Command("tar", "--numeric-owner", "-C", dir, "-czf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	root := filepath.Join(t.TempDir(), "store")
	mustOK(t, "import", storeCLI(t, root, "import", "-q", tarball, "lazy:1"))
	direct := reg.host + "/lazy:1"
	mustOK(t, "tag", storeCLI(t, root, "tag", "lazy:1", direct))
	mustOK(t, "push --compression estargz", storeCLI(t, root, "push", "-q", "--compression", "estargz", direct))
	img := &lazyImage{reg: reg, proxy: startProxy(t, reg.host), direct: direct, files: files}
	img.ref = img.proxy.host + "/lazy:1"
	blobs, _ := filepath.Glob(filepath.Join(reg.data, "docker/registry/v2/blobs/sha256/*/*/data"))
	for _, b := range blobs {
		if st, err := os.Stat(b); err == nil && st.Size() > img.layerSize {
			img.layerSize = st.Size()
		}
	}
	if img.layerSize < 20<<20 {
		t.Fatalf("the pushed layer has %d bytes", img.layerSize)
	}
	return img
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// envCLI runs unionfuse with --root root after the subcommand and env
// added to the environment.
func envCLI(t *testing.T, env []string, root string, args ...string) result {
	t.Helper()
	cmd := exec.Command(unionfuseBinary(t), append([]string{args[0], "--root", root}, args[1:]...)...)
	cmd.Env = append(os.Environ(), env...)
	return run(t, cmd)
}

// noBackground keeps the daemons from completing lazy layers.
var noBackground = []string{"UNIONFUSE_LAZY_COMPLETE_AFTER=off"}

// partialLayers returns the partial layers of the store at root.
func partialLayers(root string) []string {
	m, _ := filepath.Glob(filepath.Join(root, "layers/*/partial/blob"))
	return m
}

// TestLazyPullRun: a lazy pull fetches the manifest, config and TOC
// only; the image runs at once and `cat /small` fetches a small share of
// the layer; a write to a file not yet fetched copies up its real data;
// the merged tree and every file equal those of a full pull; and pull
// --lazy=false completes the layer into one equal to the full pull's.
func TestLazyPullRun(t *testing.T) {
	testutil.RequireFuse(t)
	img := pushLazyImage(t)
	lazyRoot := filepath.Join(t.TempDir(), "lazy")
	mustOK(t, "lazy pull", storeCLI(t, lazyRoot, "pull", "-q", img.ref))
	pulled := img.proxy.bytes.Load()
	if len(partialLayers(lazyRoot)) != 1 {
		t.Fatalf("after a lazy pull, partial layers: %v", partialLayers(lazyRoot))
	}
	r := envCLI(t, noBackground, lazyRoot, "run", "--rm", img.ref, "cat", "/small")
	mustOK(t, "run cat /small", r)
	if r.stdout != "small\n" {
		t.Fatalf("cat /small printed %q", r.stdout)
	}
	ran := img.proxy.bytes.Load() - pulled
	r = storeCLI(t, lazyRoot, "inspect", "--format", "{{.GraphDriver.Data.PartialLayers}}", img.ref)
	mustOK(t, "inspect", r)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}: [0-9.]+ [kM]B of 3[0-9] MB local\n$`).MatchString(r.stdout) {
		t.Errorf("inspect shows the partial layers as %q", r.stdout)
	}
	r = storeCLI(t, lazyRoot, "images", "--format", "{{.Partial}}", img.ref)
	mustOK(t, "images", r)
	if !regexp.MustCompile(`^1 of [0-9]+ layers partial, [0-9.]+ [kM]B of 3[0-9] MB local\n$`).MatchString(r.stdout) {
		t.Errorf("images shows the partial image as %q", r.stdout)
	}
	t.Logf("layer %d bytes; lazy pull transferred %d bytes (%.2f%%), run cat /small %d more (%.2f%%)",
		img.layerSize, pulled, 100*float64(pulled)/float64(img.layerSize), ran, 100*float64(ran)/float64(img.layerSize))
	if pulled > img.layerSize/50 || pulled+ran > img.layerSize/10 {
		t.Errorf("lazy pull + run transferred %d + %d bytes of a %d-byte layer", pulled, ran, img.layerSize)
	}

	// Copy-up of a file whose data is not local yet.
	want := sha256.Sum256(append(append([]byte{}, img.files["data/f3"]...), "x\n"...))
	r = envCLI(t, noBackground, lazyRoot, "run", "--rm", img.ref, "sh", "-c", "echo x >> /data/f3 && sha256sum /data/f3")
	mustOK(t, "append to /data/f3", r)
	if got := strings.Fields(r.stdout); len(got) == 0 || got[0] != hex.EncodeToString(want[:]) {
		t.Errorf("after copy-up and append, sha256sum printed %q, want %x", r.stdout, want)
	}

	fullRoot := filepath.Join(t.TempDir(), "full")
	mustOK(t, "full pull", storeCLI(t, fullRoot, "pull", "-q", "--lazy=false", img.direct))
	if p := partialLayers(fullRoot); len(p) != 0 {
		t.Fatalf("pull --lazy=false left partial layers: %v", p)
	}
	lazyTree := mountedTree(t, lazyRoot, img.ref)
	fullTree := mountedTree(t, fullRoot, img.direct)
	compareTrees(t, "lazy mount", lazyTree, fullTree)
	if got := lazyTree["small"]; !strings.Contains(got, sha(img.files["small"])) {
		t.Errorf("small in the lazy mount: %s", got)
	}

	// A full pull completes the lazily pulled layer in place.
	mustOK(t, "pull --lazy=false over the lazy pull", storeCLI(t, lazyRoot, "pull", "-q", "--lazy=false", img.ref))
	if p := partialLayers(lazyRoot); len(p) != 0 {
		t.Fatalf("pull --lazy=false left partial layers: %v", p)
	}
	compareTrees(t, "completed layer", layerTree(t, lazyRoot), layerTree(t, fullRoot))
	r = storeCLI(t, lazyRoot, "inspect", "--format", "{{.GraphDriver.Data.PartialLayers}}", img.ref)
	if r.code != 0 || r.stdout != "<no value>\n" {
		t.Errorf("inspect of the completed image shows partial layers: %q %q", r.stdout, r.stderr)
	}
	if r = storeCLI(t, lazyRoot, "images", "--format", "{{.Partial}}", img.ref); r.code != 0 || r.stdout != "\n" {
		t.Errorf("images of the completed image shows it partial: %q %q", r.stdout, r.stderr)
	}
	mustOK(t, "save of the completed image", storeCLI(t, lazyRoot, "save", "-o", filepath.Join(t.TempDir(), "img.tar"), img.ref))
}

// TestLazyBadChunkAndCutConnection: through one lazy mount, a chunk
// altered on the way is refused (EIO), and so is every read while the
// registry cannot be reached; each read succeeds once the registry
// answers right again. Then the daemon completes the layer in the
// background.
func TestLazyBadChunkAndCutConnection(t *testing.T) {
	testutil.RequireFuse(t)
	img := pushLazyImage(t)
	root := filepath.Join(t.TempDir(), "store")
	mustOK(t, "lazy pull", storeCLI(t, root, "pull", "-q", img.ref))
	merged := filepath.Join(t.TempDir(), "merged")
	os.Mkdir(merged, 0o755)
	cleanupMount(t, merged)
	logFile := filepath.Join(t.TempDir(), "fuse.log")
	mustOK(t, "mount-image", envCLI(t, noBackground, root, "mount-image", "--log", logFile, img.ref, merged))
	rec := daemonOf(t, merged)

	img.proxy.tamper.Store(true)
	if _, err := os.ReadFile(filepath.Join(merged, "tamper")); !errors.Is(err, syscall.EIO) {
		t.Errorf("read of a tampered chunk: %v, want EIO", err)
	}
	img.proxy.tamper.Store(false)
	if b, err := os.ReadFile(filepath.Join(merged, "tamper")); err != nil || !bytes.Equal(b, img.files["tamper"]) {
		t.Errorf("read once the chunk is right: %d bytes, %v", len(b), err)
	}

	img.proxy.cut.Store(true)
	if _, err := os.ReadFile(filepath.Join(merged, "data/f2")); !errors.Is(err, syscall.EIO) {
		t.Errorf("read with the connection cut: %v, want EIO", err)
	}
	img.proxy.cut.Store(false)
	if b, err := os.ReadFile(filepath.Join(merged, "data/f2")); err != nil || !bytes.Equal(b, img.files["data/f2"]) {
		t.Errorf("read once the registry is back: %d bytes, %v", len(b), err)
	}
	umountCLI(t, merged, rec)
	if log, _ := os.ReadFile(logFile); !bytes.Contains(log, []byte("digest mismatch")) {
		t.Errorf("the daemon's log does not name the refused chunk:\n%s", log)
	}

	// Background completion: the daemon fetches the rest and the layer
	// becomes a normal one.
	mustOK(t, "mount-image", envCLI(t, []string{"UNIONFUSE_LAZY_COMPLETE_AFTER=0s"}, root, "mount-image", "--log", logFile, img.ref, merged))
	rec = daemonOf(t, merged)
	for start := time.Now(); len(partialLayers(root)) > 0; time.Sleep(100 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			log, _ := os.ReadFile(logFile)
			t.Fatalf("the layer is still partial after 30 s:\n%s", log)
		}
	}
	if b, err := os.ReadFile(filepath.Join(merged, "data/big-link")); err != nil || !bytes.Equal(b, img.files["data/big"]) {
		t.Errorf("read after completion: %d bytes, %v", len(b), err)
	}
	umountCLI(t, merged, rec)
}

// mountedTree mounts image ref of the store at root, describes its tree
// (reading every file) and unmounts it.
func mountedTree(t *testing.T, root, ref string) map[string]string {
	t.Helper()
	merged := filepath.Join(t.TempDir(), "merged")
	os.Mkdir(merged, 0o755)
	cleanupMount(t, merged)
	mustOK(t, "mount-image", envCLI(t, noBackground, root, "mount-image", ref, merged))
	rec := daemonOf(t, merged)
	tree := describeTree(t, merged)
	umountCLI(t, merged, rec)
	return tree
}

// layerTree describes the one layer directory of the store at root.
func layerTree(t *testing.T, root string) map[string]string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(root, "layers/*/diff"))
	if len(dirs) != 1 {
		t.Fatalf("layers of %s: %v", root, dirs)
	}
	return describeTree(t, dirs[0])
}

// describeTree returns, for each path below dir, its type and mode,
// owner, link count, mtime (seconds), size and content digest or link
// target.
func describeTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode %o uid %d gid %d nlink %d mtime %d", st.Mode, st.Uid, st.Gid, st.Nlink, st.Mtim.Sec)
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" size %d sha256 %s", st.Size, sha(b))
		case syscall.S_IFLNK:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		}
		if rel == "." {
			desc = "root" // the mountpoint's own times and links differ
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return out
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// compareTrees reports every difference between two described trees.
func compareTrees(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	var names []string
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	bad := 0
	for _, n := range names {
		if got[n] != want[n] {
			if bad++; bad <= 10 {
				t.Errorf("%s: %s: %q, want %q", what, n, got[n], want[n])
			}
		}
	}
	if len(want) < 10 {
		t.Errorf("%s: only %d entries compared", what, len(want))
	}
}

// TestLazyRootless: an unprivileged user pulls the eStargz image lazily
// into a store of its own and reads it through mount-image (fusermount3):
// the data is fetched, checked and written into the user's layer.
func TestLazyRootless(t *testing.T) {
	testutil.RequireFuse(t)
	requireTools(t, "setpriv", "fusermount3")
	img := pushLazyImage(t)
	bin := unionfuseBinary(t)
	openFuseDevice(t)
	dir := worldDir(t)
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	store, merged := filepath.Join(dir, "store"), filepath.Join(dir, "merged")
	cleanupMount(t, merged)
	script := strings.Join([]string{
		"set -e",
		"u() { c=$1; shift; " + bin + " \"$c\" --root " + store + " \"$@\"; }",
		"mkdir " + merged,
		"u pull -q " + img.ref,
		"ls " + store + "/layers/*/partial/blob >/dev/null && echo partial",
		"UNIONFUSE_LAZY_COMPLETE_AFTER=off u mount-image " + img.ref + " " + merged,
		"cat " + merged + "/small",
		"sha256sum " + merged + "/data/big-link | cut -c1-64",
		"cat " + merged + "/etc/small-link",
		bin + " umount " + merged,
		"u pull -q --lazy=false " + img.ref,
		"ls " + store + "/layers/*/partial/blob 2>/dev/null || echo complete",
	}, "\n")
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+dir, "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as uid %d: %v\n%s", nobody, err, out)
	}
	want := img.ref + "\npartial\nsmall\n" + sha(img.files["data/big"]) + "\nsmall\n" + img.ref + "\ncomplete\n"
	if string(out) != want {
		t.Errorf("as uid %d:\n%s\nwant:\n%s", nobody, out, want)
	}
}
