package registry

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestLoadInsecureRegistries: docker's key and podman's v1 and v2 forms,
// a missing file skipped, a broken one named.
func TestLoadInsecureRegistries(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	podman := write("podman.conf", `unqualified-search-registries = ["docker.io"]
[[registry]]
location = "registry.lan:5000/team"
insecure = true
[[registry]]
location = "secure.example.com"
[[registry]]
prefix = "*.dev.example.com"
insecure = true
[aliases]
"busybox" = "docker.io/library/busybox"
`)
	v1 := write("v1.conf", "[registries.insecure]\nregistries = [\"old.lan\"]\n")
	own := write("unionfuse.conf", `insecure-registries = ["10.0.0.0/8", "build.lan:443"]`+"\n")
	got, err := LoadInsecureRegistries([]string{podman, filepath.Join(dir, "missing.conf"), v1, own})
	want := []string{"registry.lan:5000", "*.dev.example.com", "old.lan", "10.0.0.0/8", "build.lan:443"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("LoadInsecureRegistries = %q, %v; want %q", got, err, want)
	}
	bad := write("bad.conf", "insecure-registries = [\n")
	if _, err := LoadInsecureRegistries([]string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("a broken file: %v, want an error naming it", err)
	}

	o := Options{InsecureRegistries: got}
	for reg, want := range map[string]bool{"registry.lan:5000": true, "registry.lan": false, "old.lan:5000": true,
		"x.dev.example.com": true, "dev.example.com": false, "10.1.2.3:5000": true, "11.1.2.3": false,
		"build.lan:443": true, "build.lan:5000": false, "secure.example.com": false} {
		if got := o.insecure(reg); got != want {
			t.Errorf("insecure(%q) = %v, want %v", reg, got, want)
		}
	}
}

// TestConfigFiles: podman's files, then unionfuse's, the user's last.
func TestConfigFiles(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/home/u/.cfg")
	t.Setenv("CONTAINERS_REGISTRIES_CONF", "/tmp/podman.conf")
	want := []string{"/tmp/podman.conf", "/home/u/.cfg/containers/registries.conf",
		"/etc/unionfuse/registries.conf", "/home/u/.cfg/unionfuse/registries.conf"}
	if got := ConfigFiles(); !reflect.DeepEqual(got, want) {
		t.Errorf("ConfigFiles() = %q, want %q", got, want)
	}
}
