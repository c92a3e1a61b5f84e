package reexec

import (
	"os"
	"slices"
	"testing"
)

func TestCommand(t *testing.T) {
	cmd := Command(Exporter, "unionfuse-export", []string{"A=1"}, "x", "y")
	if cmd.Path != "/proc/self/exe" || !slices.Equal(cmd.Args, []string{"unionfuse-export", "x", "y"}) {
		t.Errorf("path %q args %q", cmd.Path, cmd.Args)
	}
	if !slices.Equal(cmd.Env, []string{"A=1", "UNIONFUSE_ROLE=export"}) {
		t.Errorf("env %q", cmd.Env)
	}
	if cmd := Command(Daemon, "d", nil); !slices.Equal(cmd.Env, []string{Env(Daemon)}) {
		t.Errorf("env without a base: %q", cmd.Env)
	}
}

func TestRun(t *testing.T) {
	if _, ok := Run(); ok {
		t.Fatal("Run ran a role in a process started without one")
	}
	ran := false
	Register("test-role", func() int { ran = true; return 7 })
	defer delete(roles, "test-role")
	t.Setenv(envRole, "test-role")
	if Current() != "test-role" {
		t.Errorf("Current() = %q", Current())
	}
	code, ok := Run()
	if !ok || !ran || code != 7 {
		t.Errorf("Run() = %d, %v (ran %v), want 7, true", code, ok, ran)
	}
	if _, set := os.LookupEnv(envRole); set {
		t.Error("Run left the role's variable for the role's children")
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	Register("twice", func() int { return 0 })
	defer delete(roles, "twice")
	defer func() {
		if recover() == nil {
			t.Error("a second Register of a role did not panic")
		}
	}()
	Register("twice", func() int { return 0 })
}

func TestSiblingOf(t *testing.T) {
	dir := t.TempDir()
	exe := dir + "/unionfuse"
	for name, mode := range map[string]os.FileMode{"unionfuse-init": 0o755, "unionfuse-fuse": 0o644} {
		if err := os.WriteFile(dir+"/"+name, nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(dir+"/unionfuse-dir", 0o755); err != nil {
		t.Fatal(err)
	}
	for suffix, want := range map[string]string{
		"-init": exe + "-init", // an executable file
		"-fuse": "",            // not executable
		"-dir":  "",            // a directory
		"-none": "",            // missing
	} {
		if got := siblingOf(exe, suffix); got != want {
			t.Errorf("siblingOf(%q, %q) = %q, want %q", exe, suffix, got, want)
		}
	}
	// A sibling does not look for a sibling of its own.
	if got := Sibling(".test"); got != "" {
		t.Errorf("Sibling of a binary already named so: %q", got)
	}
}
