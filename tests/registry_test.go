package tests

// pull, push, login and logout against a real registry (see
// registry_server_test.go), checked with skopeo and podman as independent
// clients: digests compared both ways, bad input with the store checked
// unchanged afterwards.

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/internal/testutil"
	"golang.org/x/sys/unix"
)

// skopeoCmd runs skopeo, skipping t when it is missing.
func skopeoCmd(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("needs skopeo (make deps installs it)")
	}
	out, err := exec.Command("skopeo", append([]string{"--insecure-policy"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// skopeoDigest returns the manifest digest skopeo reads for ref.
func skopeoDigest(t *testing.T, ref string, args ...string) string {
	t.Helper()
	var info struct{ Digest string }
	out := skopeoCmd(t, append(append([]string{"inspect"}, args...), "docker://"+ref)...)
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, out)
	}
	return info.Digest
}

// storeState describes a store so that two states can be compared: its
// images (ids and names), its layers and what is left in tmp/.
func storeState(t *testing.T, root string) string {
	t.Helper()
	r := storeCLI(t, root, "images", "-a", "--no-trunc", "--format", "json")
	mustOK(t, "images", r)
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var row struct{ Repository, Tag, Digest, ID string }
		json.Unmarshal([]byte(line), &row)
		names = append(names, row.Repository+":"+row.Tag+" "+row.Digest+" "+row.ID)
	}
	for _, d := range []string{"layers", "tmp"} {
		ents, _ := os.ReadDir(filepath.Join(root, d))
		for _, e := range ents {
			names = append(names, d+"/"+e.Name())
		}
	}
	sort.Strings(names)
	return strings.Join(names, "\n")
}

var pushDigestRE = regexp.MustCompile(`(?m)^1\.0: digest: (sha256:[0-9a-f]{64}) size: [0-9]+$`)

// TestRegistryPushPull: push to a plain-HTTP registry on 127.0.0.1 (no
// flag needed, as docker), skopeo reads the same digest, a second push
// sends nothing, a push to another repository mounts; what skopeo copies
// into the registry pulls, shows its digest and runs.
func TestRegistryPushPull(t *testing.T) {
	reg := startRegistry(t, false)
	root := busyboxStore(t)
	ref := reg.host + "/busybox:1.0"
	mustOK(t, "tag", storeCLI(t, root, "tag", "busybox", ref))
	r := storeCLI(t, root, "push", ref)
	mustOK(t, "push", r)
	m := pushDigestRE.FindStringSubmatch(r.stdout)
	if m == nil || !strings.HasPrefix(r.stdout, "The push refers to repository ["+reg.host+"/busybox]\n") ||
		!regexp.MustCompile(`(?m)^[0-9a-f]{12}: Pushed$`).MatchString(r.stdout) {
		t.Fatalf("push printed:\n%s", r.stdout)
	}
	pushed := m[1]
	if got := skopeoDigest(t, ref, "--tls-verify=false"); got != pushed {
		t.Errorf("skopeo reads digest %s, push printed %s", got, pushed)
	}
	r = storeCLI(t, root, "push", ref)
	mustOK(t, "second push", r)
	if !strings.Contains(r.stdout, ": Layer already exists\n") || strings.Contains(r.stdout, "Pushed") {
		t.Errorf("second push printed:\n%s", r.stdout)
	}
	mustOK(t, "tag", storeCLI(t, root, "tag", "busybox", reg.host+"/other/bb:1.0"))
	r = storeCLI(t, root, "push", reg.host+"/other/bb:1.0")
	mustOK(t, "push to another repository", r)
	if !strings.Contains(r.stdout, ": Mounted from busybox\n") {
		t.Errorf("push to another repository printed:\n%s", r.stdout)
	}

	// skopeo copies within the registry; unionfuse pulls that.
	skopeoCmd(t, "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://"+ref, "docker://"+reg.host+"/sk/bb:2")
	want := skopeoDigest(t, reg.host+"/sk/bb:2", "--tls-verify=false")
	root2 := filepath.Join(t.TempDir(), "store")
	r = storeCLI(t, root2, "pull", reg.host+"/sk/bb:2")
	mustOK(t, "pull", r)
	wantOut := "2: Pulling from sk/bb\n[0-9a-f]{12}: Pulling fs layer\n(?s:.*)[0-9a-f]{12}: Pull complete\n" +
		"Digest: " + want + "\nStatus: Downloaded newer image for " + regexp.QuoteMeta(reg.host) + "/sk/bb:2\n" +
		regexp.QuoteMeta(reg.host) + "/sk/bb:2\n$"
	if !regexp.MustCompile(wantOut).MatchString(r.stdout) {
		t.Errorf("pull printed:\n%s\nwant:\n%s", r.stdout, wantOut)
	}
	if strings.Contains(r.stdout, "Downloading") {
		t.Errorf("pull printed progress bars without a terminal:\n%s", r.stdout)
	}
	r = storeCLI(t, root2, "images", "--digests")
	mustOK(t, "images --digests", r)
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(reg.host) + `/sk/bb\s+2\s+` + want + `\s+[0-9a-f]{12}\s`).MatchString(r.stdout) {
		t.Errorf("images --digests:\n%s", r.stdout)
	}
	r = storeCLI(t, root2, "inspect", reg.host+"/sk/bb:2")
	mustOK(t, "inspect", r)
	var ii []struct {
		Id          string
		RepoDigests []string
	}
	json.Unmarshal([]byte(r.stdout), &ii)
	orig := storeCLI(t, root, "images", "-q", "--no-trunc")
	if len(ii) != 1 || len(ii[0].RepoDigests) != 1 || ii[0].RepoDigests[0] != reg.host+"/sk/bb@"+want ||
		ii[0].Id != strings.TrimSpace(orig.stdout) {
		t.Errorf("inspect: %+v, want RepoDigests [%s] and id %s", ii, reg.host+"/sk/bb@"+want, orig.stdout)
	}
	r = storeCLI(t, root2, "pull", reg.host+"/sk/bb:2")
	mustOK(t, "second pull", r)
	if !strings.Contains(r.stdout, ": Already exists\n") || !strings.Contains(r.stdout, "Status: Image is up to date for "+reg.host+"/sk/bb:2\n") {
		t.Errorf("second pull printed:\n%s", r.stdout)
	}
	r = storeCLI(t, root2, "pull", "-q", reg.host+"/busybox:1.0")
	if r.code != 0 || r.stdout != reg.host+"/busybox:1.0\n" {
		t.Errorf("pull -q: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if os.Geteuid() == 0 {
		if _, err := os.Stat("/dev/fuse"); err == nil {
			r = storeCLI(t, root2, "run", "--rm", reg.host+"/sk/bb:2", "echo", "ok")
			mustOK(t, "run", r)
			if r.stdout != "ok\n" {
				t.Errorf("run of the pulled image printed %q", r.stdout)
			}
		}
	}
}

// TestRegistryZstdAndPodman: a zstd push reads back in skopeo and pulls
// into podman with the same digest.
func TestRegistryZstdAndPodman(t *testing.T) {
	reg := startRegistry(t, false)
	root := busyboxStore(t)
	for _, c := range []string{"gzip", "zstd"} {
		ref := reg.host + "/bb:" + c
		mustOK(t, "tag", storeCLI(t, root, "tag", "busybox", ref))
		r := storeCLI(t, root, "push", "--compression", c, ref)
		mustOK(t, "push --compression "+c, r)
		raw := skopeoCmd(t, "inspect", "--raw", "--tls-verify=false", "docker://"+ref)
		if wantType := map[string]string{"gzip": "tar+gzip", "zstd": "tar+zstd"}[c]; !strings.Contains(raw, wantType) {
			t.Errorf("pushed manifest with --compression %s: %s", c, raw)
		}
		if !strings.Contains(r.stdout, string(cowcache.FromBytes([]byte(raw)))) {
			t.Errorf("push printed %q, skopeo reads a manifest of digest %s", r.stdout, cowcache.FromBytes([]byte(raw)))
		}
		r2 := filepath.Join(t.TempDir(), "store")
		mustOK(t, "pull of "+c, storeCLI(t, r2, "pull", "-q", ref))
		if a, b := storeCLI(t, root, "images", "-q", "--no-trunc"), storeCLI(t, r2, "images", "-q", "--no-trunc"); a.stdout != b.stdout {
			t.Errorf("image id after a %s round trip: %q, want %q", c, b.stdout, a.stdout)
		}
	}
	if _, err := exec.LookPath("podman"); err != nil || os.Geteuid() != 0 {
		t.Skip("podman part: needs podman and root")
	}
	p := newPodman(t, unionfuseBinary(t))
	ref := reg.host + "/bb:gzip"
	p.mustRun(t, "pull", "-q", "--tls-verify=false", ref)
	got := strings.TrimSpace(p.mustRun(t, "image", "inspect", "--format", "{{.Digest}}", ref))
	if want := skopeoDigest(t, ref, "--tls-verify=false"); got != want {
		t.Errorf("podman pulled digest %s, the registry has %s", got, want)
	}
}

// TestRegistryMultiArch: an index pulls the image of this machine, and
// --platform another; a platform it lacks is an error.
func TestRegistryMultiArch(t *testing.T) {
	reg := startRegistry(t, false)
	mk := func(arch string) v1.Image {
		img, err := random.Image(1024, 2)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		img, err = mutate.ConfigFile(img, cf)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	here, there := mk(runtime.GOARCH), mk(other)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: there, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: here, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}})
	ref, err := name.ParseReference(reg.host+"/multi:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	for _, tc := range []struct {
		args []string
		want v1.Image
	}{{nil, here}, {[]string{"--platform", "linux/" + other}, there}} {
		root := filepath.Join(t.TempDir(), "store")
		r := storeCLI(t, root, append(append([]string{"pull"}, tc.args...), reg.host+"/multi:1")...)
		mustOK(t, "pull", r)
		id, _ := tc.want.ConfigName()
		if got := storeCLI(t, root, "images", "-q", "--no-trunc"); got.stdout != id.String()+"\n" || !strings.Contains(r.stdout, "Digest: "+idxDigest.String()+"\n") {
			t.Errorf("pull %v: image %q, want %s; printed:\n%s", tc.args, got.stdout, id, r.stdout)
		}
	}
	root := busyboxStore(t)
	before := storeState(t, root)
	r := storeCLI(t, root, "pull", "--platform", "linux/s390x", reg.host+"/multi:1")
	if r.code != 1 || !strings.Contains(r.stderr, "no matching manifest for linux/s390x") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("pull of a platform the index lacks: exit %d, stderr %q", r.code, r.stderr)
	}
	if after := storeState(t, root); after != before {
		t.Errorf("store changed by a failed pull:\n%s\n---\n%s", before, after)
	}
}

// TestRegistryBadInput: each failure is one line on stderr, exit 1, and
// leaves the store as it was.
func TestRegistryBadInput(t *testing.T) {
	reg := startRegistry(t, false)
	root := busyboxStore(t)
	mustOK(t, "tag", storeCLI(t, root, "tag", "busybox", reg.host+"/bb:1"))
	mustOK(t, "push", storeCLI(t, root, "push", "-q", reg.host+"/bb:1"))
	// A second image whose layer the test corrupts in the registry.
	mustOK(t, "import", storeCLI(t, root, "import", "-q", writeTemp(t, "x.tar", testutil.Tar(t, testutil.Spec("x=x"))), reg.host+"/bad:1"))
	r := storeCLI(t, root, "push", reg.host+"/bad:1")
	mustOK(t, "push", r)
	raw := skopeoCmd(t, "inspect", "--raw", "--tls-verify=false", "docker://"+reg.host+"/bad:1")
	var m v1.Manifest
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	blob := reg.blobFile(m.Layers[0].Digest.String())
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	clean := filepath.Join(t.TempDir(), "store")
	mustOK(t, "pull", storeCLI(t, clean, "pull", "-q", reg.host+"/bb:1"))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String() // nothing listens there once closed
	l.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pull", refused + "/bb:1"}, "connection refused at " + refused},
		{[]string{"pull", "no-such-host.invalid/bb:1"}, "unknown host no-such-host.invalid"},
		{[]string{"pull", reg.host + "/bb:nope"}, "manifest for " + reg.host + "/bb:nope not found: manifest unknown"},
		{[]string{"pull", reg.host + "/nothing:1"}, "not found"},
		{[]string{"pull", reg.host + "/bad:1"}, "layer " + m.Layers[0].Digest.Hex[:12] + ": digest mismatch"},
		{[]string{"push", reg.host + "/absent:1"}, "an image does not exist locally with the tag: " + reg.host + "/absent"},
		{[]string{"pull", "--tls-verify", reg.host + "/bb:1"}, "server gave HTTP response to HTTPS client"},
	} {
		for _, store := range []string{root, clean} {
			before := storeState(t, store)
			r := storeCLI(t, store, tc.args...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, r.code, r.stderr, tc.want)
			}
			if after := storeState(t, store); after != before {
				t.Errorf("%v changed the store:\n%s\n---\n%s", tc.args, before, after)
			}
		}
	}
}

// TestRegistryConcurrentPulls: two pulls of one image into one store at
// once, and pulls racing rmi, leave one consistent store.
func TestRegistryConcurrentPulls(t *testing.T) {
	reg := startRegistry(t, false)
	src := busyboxStore(t)
	ref := reg.host + "/bb:1"
	mustOK(t, "tag", storeCLI(t, src, "tag", "busybox", ref))
	mustOK(t, "push", storeCLI(t, src, "push", "-q", ref))
	root := filepath.Join(t.TempDir(), "store")
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = storeCLI(t, root, "pull", "-q", ref) }()
	}
	wg.Wait()
	for i, r := range results {
		mustOK(t, "concurrent pull "+string(rune('A'+i)), r)
	}
	layers, _ := os.ReadDir(filepath.Join(root, "layers"))
	if got := storeCLI(t, root, "images", "-q"); strings.Count(got.stdout, "\n") != 1 || len(layers) != 1 {
		t.Errorf("after two pulls at once: images %q, %d layers", got.stdout, len(layers))
	}
	for range 3 {
		var pr, rr result
		wg.Add(2)
		go func() { defer wg.Done(); pr = storeCLI(t, root, "pull", "-q", ref) }()
		go func() { defer wg.Done(); rr = storeCLI(t, root, "rmi", ref) }()
		wg.Wait()
		mustOK(t, "pull racing rmi", pr)
		if rr.code != 0 && !strings.Contains(rr.stderr, "not found") {
			t.Errorf("rmi racing pull: exit %d %q", rr.code, rr.stderr)
		}
		mustOK(t, "pull after", storeCLI(t, root, "pull", "-q", ref))
		if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) != 0 {
			t.Errorf("tmp/ not empty after pull and rmi: %d entries", len(ents))
		}
	}
}

// TestRegistryTLSLogin: a registry with TLS (a CA of the test's) and
// basic auth: login checks the password before writing docker's
// config.json, never prints it; pull and push use what login wrote;
// skopeo reads the same file and digest; logout removes it.
func TestRegistryTLSLogin(t *testing.T) {
	reg := startRegistry(t, true)
	home := t.TempDir()
	cfgDir := filepath.Join(home, ".docker")
	env := append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+cfgDir, "REGISTRY_AUTH_FILE=", "XDG_RUNTIME_DIR="+home)
	uf := func(stdin string, args ...string) result {
		t.Helper()
		cmd := exec.Command(unionfuseBinary(t), args...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
		return run(t, cmd)
	}
	tlsArgs := []string{"--tls-verify", "--cert-dir", reg.certDir}
	login := func(stdin string, args ...string) result {
		return uf(stdin, append(append([]string{"login"}, tlsArgs...), args...)...)
	}
	cfgPath := filepath.Join(cfgDir, "config.json")
	r := login("wrong\n", "-u", reg.user, "--password-stdin", reg.host)
	if r.code != 1 || !strings.Contains(r.stderr, "unauthorized") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("login with a wrong password: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(cfgPath); !os.IsNotExist(err) {
		t.Errorf("a refused login wrote %s: %v", cfgPath, err)
	}
	r = uf("", "login", "--tls-verify", "-u", reg.user, "-p", reg.pass, reg.host)
	if r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("login without the CA: exit %d, stderr %q", r.code, r.stderr)
	}
	r = login("", "-u", reg.user, "-p", reg.pass, reg.host)
	if r.code != 0 || r.stdout != "Login Succeeded\n" ||
		!strings.HasPrefix(r.stderr, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n") {
		t.Errorf("login -p: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = login(reg.pass+"\n", "-u", reg.user, "--password-stdin", reg.host)
	if r.code != 0 || r.stdout != "Login Succeeded\n" || strings.Contains(r.stdout+r.stderr, reg.pass) {
		t.Errorf("login --password-stdin: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	var cfg struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	b, err := os.ReadFile(cfgPath)
	if err != nil || json.Unmarshal(b, &cfg) != nil || cfg.Auths[reg.host].Auth != base64.StdEncoding.EncodeToString([]byte(reg.user+":"+reg.pass)) {
		t.Errorf("config.json after login: %v %s", err, b)
	}
	if fi, err := os.Stat(cfgPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode: %v %v", fi.Mode(), err)
	}

	root := busyboxStore(t)
	ref := reg.host + "/bb:1.0"
	mustOK(t, "tag", storeCLI(t, root, "tag", "busybox", ref))
	r = uf("", append(append([]string{"push", "--root", root}, tlsArgs...), ref)...)
	mustOK(t, "push", r)
	m := pushDigestRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("push printed %q", r.stdout)
	}
	if got := skopeoDigest(t, ref, "--cert-dir", reg.certDir, "--authfile", cfgPath); got != m[1] {
		t.Errorf("skopeo reads digest %s, push printed %s", got, m[1])
	}
	root2 := filepath.Join(t.TempDir(), "store")
	r = uf("", append(append([]string{"pull", "--root", root2}, tlsArgs...), ref)...)
	mustOK(t, "pull", r)
	if !strings.Contains(r.stdout, "Digest: "+m[1]+"\n") {
		t.Errorf("pull printed:\n%s", r.stdout)
	}
	r = uf("", "logout", reg.host)
	if r.code != 0 || r.stdout != "Removing login credentials for "+reg.host+"\n" {
		t.Errorf("logout: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r = uf("", "logout", reg.host); r.code != 0 || r.stdout != "Not logged in to "+reg.host+"\n" {
		t.Errorf("second logout: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	root3 := filepath.Join(t.TempDir(), "store")
	r = uf("", append(append([]string{"pull", "--root", root3}, tlsArgs...), ref)...)
	if r.code != 1 || !strings.Contains(r.stderr, "unauthorized") {
		t.Errorf("pull after logout: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestRegistryPullFullDisk: a store on a 2 MiB tmpfs cannot take busybox:
// the pull fails with one line saying so and stores nothing; a second
// pull, once there is room, works.
func TestRegistryPullFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a small tmpfs")
	}
	reg := startRegistry(t, false)
	ref := reg.host + "/bb:1"
	pushedBusybox(t, ref)
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	root := filepath.Join(mnt, "store")
	mustOK(t, "images", storeCLI(t, root, "images"))
	before := storeState(t, root)
	r := storeCLI(t, root, "pull", ref)
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "no space left for the store "+root) {
		t.Errorf("pull on a full disk: exit %d, stderr %q", r.code, r.stderr)
	}
	if after := storeState(t, root); after != before {
		t.Errorf("store changed by a pull that ran out of space:\n%s\n---\n%s", before, after)
	}
	if err := unix.Mount("", mnt, "", unix.MS_REMOUNT, "size=64m"); err != nil {
		t.Fatalf("grow tmpfs: %v", err)
	}
	mustOK(t, "pull with room", storeCLI(t, root, "pull", "-q", ref))
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Errorf("umount: %v", err)
	}
}
