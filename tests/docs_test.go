package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsBusyboxRecipe runs the recipe of docs/cowcache.md that makes a
// busybox root filesystem: /bin/busybox must stay the binary (busybox
// --list names busybox itself; a link for it replaced the binary).
func TestDocsBusyboxRecipe(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (busybox-static)")
	}
	doc, err := os.ReadFile("../docs/cowcache.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "A busybox root filesystem tarball can be made")
	if !ok {
		t.Fatal("the recipe is not in docs/cowcache.md")
	}
	var script []string
	for _, line := range strings.Split(after, "\n")[1:] {
		if strings.HasPrefix(line, "    ") {
			script = append(script, strings.TrimPrefix(line, "    "))
		} else if len(script) > 0 && line != "" {
			break
		}
	}
	dir := t.TempDir()
	cmd := exec.Command("sh", "-ec", strings.Join(script, "\n"))
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the recipe fails: %v\n%s", err, out)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "rootfs/bin/busybox")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("rootfs/bin/busybox is %v (%v), want the binary", fi.Mode(), err)
	}
	if to, err := os.Readlink(filepath.Join(dir, "rootfs/bin/sh")); err != nil || to != "busybox" {
		t.Errorf("rootfs/bin/sh -> %q (%v), want busybox", to, err)
	}
}
