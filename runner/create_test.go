package runner

import (
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestContainerConfig checks Docker's rules for combining the image's
// Entrypoint and Cmd with the run options.
func TestContainerConfig(t *testing.T) {
	img := v1.Config{Entrypoint: []string{"/entry"}, Cmd: []string{"default"}, Env: []string{"PATH=/bin", "A=1"}, WorkingDir: "/app", User: "app"}
	for _, tc := range []struct {
		name string
		img  v1.Config
		o    Options
		args []string
	}{
		{"image defaults", img, Options{}, []string{"/entry", "default"}},
		{"arguments replace Cmd", img, Options{Cmd: []string{"x", "y"}}, []string{"/entry", "x", "y"}},
		{"--entrypoint drops Cmd", img, Options{Entrypoint: []string{"/other"}}, []string{"/other"}},
		{"--entrypoint with arguments", img, Options{Entrypoint: []string{"/other"}, Cmd: []string{"a"}}, []string{"/other", "a"}},
		{"--entrypoint '' clears it", img, Options{Entrypoint: []string{}, Cmd: []string{"sh"}}, []string{"sh"}},
		{"Cmd only", v1.Config{Cmd: []string{"/bin/sh", "-c", "echo"}}, Options{}, []string{"/bin/sh", "-c", "echo"}},
	} {
		cfg, err := containerConfig(tc.img, tc.o)
		if err != nil || !reflect.DeepEqual(cfg.Args, tc.args) {
			t.Errorf("%s: args %q, %v; want %q", tc.name, cfg.Args, err, tc.args)
		}
	}
	cfg, err := containerConfig(img, Options{Env: []string{"A=2", "B=3"}, WorkDir: "/w", User: "1:2"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"PATH=/bin", "A=2", "B=3"}; !reflect.DeepEqual(cfg.Env, want) || cfg.WorkDir != "/w" || cfg.User != "1:2" || cfg.Network != defaultNetwork() {
		t.Errorf("config %+v", cfg)
	}
	for _, bad := range []struct {
		img  v1.Config
		o    Options
		want string
	}{
		{v1.Config{}, Options{}, "no command specified"},
		{img, Options{WorkDir: "rel"}, "absolute path"},
		{img, Options{Network: "mesh"}, "network mesh not found"},
		{img, Options{Volumes: []string{"/nonexistent-src:/x"}}, "does not exist"},
		{img, Options{Volumes: []string{"/tmp:rel"}}, "absolute"},
		{img, Options{Volumes: []string{"/tmp:/x:rx"}}, "unknown mode"},
	} {
		if _, err := containerConfig(bad.img, bad.o); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: error %v, want one with %q", bad.o, err, bad.want)
		}
	}
}

// TestMergeEnvDefaultPath: a container without PATH gets Docker's.
func TestMergeEnvDefaultPath(t *testing.T) {
	if got := mergeEnv(nil, []string{"X=1"}); len(got) != 2 || got[0] != defaultPath || got[1] != "X=1" {
		t.Errorf("mergeEnv = %q", got)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"": syscall.SIGTERM, "KILL": syscall.SIGKILL, "sigint": syscall.SIGINT, "SIGHUP": syscall.SIGHUP, "9": syscall.SIGKILL} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"NOPE", "0", "99", "-1"} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%q) accepted", bad)
		}
	}
}

func TestSubRange(t *testing.T) {
	f := t.TempDir() + "/subuid"
	if err := os.WriteFile(f, []byte("# comment\nalice:100000:65536\n1001:200000:1000\nbad line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		names        []string
		start, count int
		ok           bool
	}{
		{[]string{"1000", "alice"}, 100000, 65536, true},
		{[]string{"1001", "bob"}, 200000, 1000, true},
		{[]string{"1002", "carol"}, 0, 0, false},
	} {
		start, count, ok := subRange(f, tc.names)
		if start != tc.start || count != tc.count || ok != tc.ok {
			t.Errorf("subRange(%q) = %d, %d, %v", tc.names, start, count, ok)
		}
	}
}

// defaultNetwork is the network a container asking for none gets here.
func defaultNetwork() string {
	if DefaultNetworkUnavailable() != nil {
		return "none"
	}
	return "bridge"
}
