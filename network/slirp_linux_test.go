package network

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestSlirpAttachFails: an attach that slirp4netns refuses fails with its
// reason, and leaves no record.
func TestSlirpAttachFails(t *testing.T) {
	if _, err := exec.LookPath("slirp4netns"); err != nil {
		t.Skip("needs slirp4netns")
	}
	s := &Slirp{StateDir: t.TempDir()}
	_, err := s.Attach("0123456789ab", 1<<22+1) // no such process
	if err == nil || !strings.Contains(err.Error(), "ns/net") {
		t.Fatalf("attach to a missing process: %v, want slirp4netns's reason", err)
	}
	if _, err := os.Stat(s.record()); !os.IsNotExist(err) {
		t.Errorf("record after a failed attach: %v", err)
	}
	if err := s.Detach("0123456789ab"); err != nil {
		t.Errorf("detach without attach: %v", err)
	}
	if err := s.Cleanup(); err != nil {
		t.Errorf("cleanup without attach: %v", err)
	}
}
