package tests

// run and build pull what the store lacks, as docker does, from a real
// registry on 127.0.0.1 (registry_server_test.go); --pull never, always
// and newer.

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestRegistryAutoPull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run containers")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("needs /dev/fuse")
	}
	reg := startRegistry(t, false)
	ref := reg.host + "/busybox:1.0"
	pushedBusybox(t, ref)

	root := filepath.Join(t.TempDir(), "store")
	r := storeCLI(t, root, "run", "--rm", "--pull", "never", ref, "echo", "ok")
	if r.code != 125 || r.stderr != "unionfuse: No such image: "+ref+"\n" {
		t.Errorf("run --pull never of a missing image: exit %d, stderr %q", r.code, r.stderr)
	}
	r = storeCLI(t, root, "run", "--rm", ref, "echo", "ok")
	wantErr := "^Unable to find image '" + regexp.QuoteMeta(ref) + "' locally\n1\\.0: Pulling from busybox\n" +
		"(?s:.*)[0-9a-f]{12}: Pull complete\nDigest: sha256:[0-9a-f]{64}\n" +
		"Status: Downloaded newer image for " + regexp.QuoteMeta(ref) + "\n$"
	if r.code != 0 || r.stdout != "ok\n" || !regexp.MustCompile(wantErr).MatchString(r.stderr) {
		t.Errorf("run of a missing image: exit %d, stdout %q, stderr:\n%s\nwant stderr:\n%s", r.code, r.stdout, r.stderr, wantErr)
	}
	r = storeCLI(t, root, "run", "--rm", ref, "echo", "ok")
	if r.code != 0 || r.stdout != "ok\n" || r.stderr != "" {
		t.Errorf("second run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = storeCLI(t, root, "run", "--rm", "--pull", "always", ref, "echo", "ok")
	if r.code != 0 || r.stdout != "ok\n" || strings.Contains(r.stderr, "Unable to find") ||
		!strings.Contains(r.stderr, "Status: Image is up to date for "+ref+"\n") {
		t.Errorf("run --pull always: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	gone := "127.0.0.1:1/busybox:1.0" // nothing listens on port 1
	mustOK(t, "tag", storeCLI(t, root, "tag", ref, gone))
	if r = storeCLI(t, root, "run", "--rm", "--pull", "always", gone, "true"); r.code != 125 || !strings.Contains(r.stderr, "connection refused") {
		t.Errorf("run --pull always, registry down: exit %d, stderr %q", r.code, r.stderr)
	}
	if r = storeCLI(t, root, "run", "--rm", "--pull", "newer", gone, "echo", "ok"); r.code != 0 || r.stdout != "ok\n" {
		t.Errorf("run --pull newer, registry down: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	// FROM pulls into a clean store; --pull checks the registry again.
	ctx := t.TempDir()
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM "+ref+"\nRUN echo built > /b\n"), 0o644)
	root2 := filepath.Join(t.TempDir(), "store")
	r = storeCLI(t, root2, "build", "--pull=never", ctx)
	if r.code == 0 || !strings.Contains(r.stderr, "FROM "+ref+": No such image: "+ref+"\n") {
		t.Errorf("build --pull=never of a missing base: exit %d, stderr %q", r.code, r.stderr)
	}
	r = storeCLI(t, root2, "build", "-t", "app:1", ctx)
	mustOK(t, "build", r)
	wantOut := "^Step 1/2 : FROM " + regexp.QuoteMeta(ref) + "\n1\\.0: Pulling from busybox\n(?s:.*)" +
		"Status: Downloaded newer image for " + regexp.QuoteMeta(ref) + "\n ---> [0-9a-f]{12}\nStep 2/2 : RUN"
	if !regexp.MustCompile(wantOut).MatchString(r.stdout) || strings.Contains(r.stdout+r.stderr, "Unable to find") {
		t.Errorf("build of a missing base printed:\n%s\nwant:\n%s", r.stdout, wantOut)
	}
	r = storeCLI(t, root2, "build", "--pull", "-t", "app:1", ctx)
	mustOK(t, "build --pull", r)
	if !strings.Contains(r.stdout, "Status: Image is up to date for "+ref+"\n") || !strings.Contains(r.stdout, " ---> Using cache\n") {
		t.Errorf("build --pull printed:\n%s", r.stdout)
	}

	// The base layer came from the busybox repository: the registry
	// mounts it from there; the new layer is sent. Each layer keeps its
	// id from Preparing to the end.
	mustOK(t, "tag", storeCLI(t, root2, "tag", "app:1", reg.host+"/app:1"))
	r = storeCLI(t, root2, "push", reg.host+"/app:1")
	mustOK(t, "push", r)
	want := regexp.MustCompile(`^The push refers to repository \[` + regexp.QuoteMeta(reg.host) + `/app\]\n` +
		`([0-9a-f]{12}): Preparing\n([0-9a-f]{12}): Preparing\n`)
	m := want.FindStringSubmatch(r.stdout)
	if m == nil || !strings.Contains(r.stdout, "\n"+m[1]+": Pushed\n") || !strings.Contains(r.stdout, "\n"+m[2]+": Mounted from busybox\n") {
		t.Errorf("push of an image built on a pulled one printed:\n%s", r.stdout)
	}
}

// TestRegistryInsecureConfig: a registry in plain HTTP on an address
// that is not the loopback's is refused, then reached once a
// registries.conf lists it: unionfuse's own file, or podman's.
func TestRegistryInsecureConfig(t *testing.T) {
	ip := nonLoopbackIP(t)
	reg := startRegistry(t, false)
	pushedBusybox(t, reg.host+"/busybox:1.0")
	host := forwardTCP(t, ip, reg.host)
	ref := host + "/busybox:1.0"
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	t.Setenv("CONTAINERS_REGISTRIES_CONF", filepath.Join(cfg, "none.conf"))
	root := filepath.Join(t.TempDir(), "store")
	if r := storeCLI(t, root, "pull", "-q", ref); r.code == 0 || !strings.Contains(r.stderr, "insecure-registries") {
		t.Fatalf("pull from %s in plain HTTP without configuration: exit %d, stderr %q", host, r.code, r.stderr)
	}
	own := filepath.Join(cfg, "unionfuse", "registries.conf")
	os.MkdirAll(filepath.Dir(own), 0o755)
	os.WriteFile(own, []byte(`insecure-registries = ["`+host+`"]`+"\n"), 0o644)
	mustOK(t, "pull with insecure-registries", storeCLI(t, root, "pull", "-q", ref))
	os.Remove(own)
	podman := filepath.Join(cfg, "podman.conf")
	os.WriteFile(podman, []byte("[[registry]]\nlocation = \""+host+"\"\ninsecure = true\n"), 0o644)
	t.Setenv("CONTAINERS_REGISTRIES_CONF", podman)
	mustOK(t, "pull with podman's registries.conf", storeCLI(t, filepath.Join(t.TempDir(), "store"), "pull", "-q", ref))
}

// pushedBusybox pushes busybox (busyboxStore) to a registry as ref.
func pushedBusybox(t *testing.T, ref string) {
	t.Helper()
	src := busyboxStore(t)
	mustOK(t, "tag", storeCLI(t, src, "tag", "busybox", ref))
	mustOK(t, "push", storeCLI(t, src, "push", "-q", ref))
}

// nonLoopbackIP returns an IPv4 address of this machine that is not the
// loopback's, or skips t.
func nonLoopbackIP(t *testing.T) string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("needs an IPv4 address besides the loopback's")
	return ""
}

// forwardTCP relays connections to a new port of ip to target until t
// ends, and returns ip:port.
func forwardTCP(t *testing.T, ip, target string) string {
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c)
				io.Copy(c, u)
			}()
		}
	}()
	return l.Addr().String()
}
