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
