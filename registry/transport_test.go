package registry

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestCertsDir: a registry whose certificate the system does not trust
// is reached with its CA in CertsRoots/HOST/, and refused without it.
func TestCertsDir(t *testing.T) {
	srv := httptest.NewUnstartedServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	img := testImage(t, 1, HostPlatform().Architecture)
	ref, _ := name.ParseReference(host + "/app:1")
	if err := remote.Write(ref, img, remote.WithTransport(srv.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	roots := t.TempDir()
	s := testStore(t)
	_, err := Pull(context.Background(), s, mustParse(t, host+"/app:1"), PullOptions{Options: Options{Verify: true, CertsRoots: []string{roots}}})
	if err == nil || !strings.Contains(err.Error(), "--cert-dir") {
		t.Errorf("pull without the CA: %v", err)
	}
	dir := filepath.Join(roots, host)
	os.MkdirAll(dir, 0o755)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(context.Background(), s, mustParse(t, host+"/app:1"), PullOptions{Options: Options{Verify: true, CertsRoots: []string{roots}}}); err != nil {
		t.Errorf("pull with the CA in %s: %v", dir, err)
	}
}

func TestInsecureByDefault(t *testing.T) {
	var o Options
	for reg, want := range map[string]bool{"localhost:5000": true, "127.0.0.1:5000": true, "127.1.2.3": true, "[::1]:5000": true,
		"registry.local:5000": false, "10.0.0.5:5000": false, "docker.io": false} {
		if got := o.insecure(reg); got != want {
			t.Errorf("insecure(%q) = %v, want %v", reg, got, want)
		}
	}
	if (&Options{Verify: true}).insecure("localhost:5000") {
		t.Error("Verify: localhost still insecure")
	}
}

func TestKeychainFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	docker := write("config.json", `{"auths":{"https://index.docker.io/v1/":{"auth":"`+encodeAuth("hub", "pw1")+`"},
		"localhost:5000":{"auth":"`+encodeAuth("loc", "pw2")+`"}}}`)
	podman := write("auth.json", `{"auths":{"quay.io/org":{"auth":"`+encodeAuth("org", "pw3")+`"},"localhost:5000":{"auth":"`+encodeAuth("pod", "pw4")+`"}}}`)
	k := fileKeychain{files: []string{docker, podman}}
	for ref, want := range map[string]string{
		"busybox":                "hub",
		"localhost:5000/app":     "loc",
		"quay.io/org/repo":       "org",
		"quay.io/other/repo":     "",
		"registry-1.docker.io/x": "hub",
	} {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		auth, err := k.Resolve(r.Context())
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := authn.Authorization(context.Background(), auth)
		if got := cfg.Username; got != want {
			t.Errorf("%s: user %q, want %q", ref, got, want)
		}
	}
}

func TestLoginFileFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d", "config.json")
	os.MkdirAll(filepath.Dir(path), 0o700)
	os.WriteFile(path, []byte(`{"auths":{"https://localhost:5000":{"auth":"b2xkOm9sZA=="},"quay.io":{"auth":"eDp5"}},"psFormat":"table"}`), 0o644)
	if err := saveLogin(path, "localhost:5000", "u", "p"); err != nil {
		t.Fatal(err)
	}
	if err := saveLogin(path, dockerHub, "h", "q"); err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	auths, _ := cfg["auths"].(map[string]any)
	want := map[string]string{"localhost:5000": encodeAuth("u", "p"), "quay.io": "eDp5", dockerHubAuthKey: encodeAuth("h", "q")}
	if cfg["psFormat"] != "table" || len(auths) != len(want) {
		t.Errorf("config after login: %s", b)
	}
	for k, v := range want {
		if e, _ := auths[k].(map[string]any); e == nil || e["auth"] != v {
			t.Errorf("auths[%q] = %v, want auth %q", k, auths[k], v)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	o := Options{AuthFile: path}
	if found, err := Logout("localhost:5000", o); !found || err != nil {
		t.Errorf("logout: %v %v", found, err)
	}
	if found, err := Logout("localhost:5000", o); found || err != nil {
		t.Errorf("second logout: %v %v", found, err)
	}
}
