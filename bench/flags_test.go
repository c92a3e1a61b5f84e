package main

import (
	"slices"
	"strings"
	"testing"
)

// TestRootlessLeavesChownOut checks that -rootless drops the chown
// workload from the default list (the unprivileged user cannot give files
// to another owner on any system) and refuses it when it is asked for.
func TestRootlessLeavesChownOut(t *testing.T) {
	c, err := parseFlags([]string{"-rootless"})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(c.Workloads, "chown") || !slices.Contains(c.Workloads, "walk") {
		t.Fatalf("default workloads with -rootless: %v", c.Workloads)
	}
	if c, err = parseFlags(nil); err != nil || !slices.Contains(c.Workloads, "chown") {
		t.Fatalf("default workloads as root: %v, %v", c.Workloads, err)
	}
	_, err = parseFlags([]string{"-rootless", "-workloads", "walk,chown"})
	if err == nil || !strings.Contains(err.Error(), "chown needs root") {
		t.Fatalf("-rootless -workloads chown: %v", err)
	}
}
