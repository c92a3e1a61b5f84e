package tests

// Integration tests of images in use by a mount: rmi and system prune
// leave a mounted image alone, until it is unmounted or its daemon dies.

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountRecords returns the names in the store's mounts/ directory.
func mountRecords(t *testing.T, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, "mounts"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// refusedAsMounted checks that r is a refusal of one line naming merged.
func refusedAsMounted(t *testing.T, what string, r result, merged string) {
	t.Helper()
	want := regexp.MustCompile(`^unionfuse( rmi)?: image [0-9a-f]{12} is mounted at ` + regexp.QuoteMeta(merged) + `: unmount it first \(unionfuse umount ` + regexp.QuoteMeta(merged) + `\)\n$`)
	if r.code == 0 || !want.MatchString(r.stderr) {
		t.Errorf("%s of a mounted image: exit %d, stderr %q; want one line naming %s", what, r.code, r.stderr, merged)
	}
}

func TestCowcacheRemoveMountedImage(t *testing.T) {
	root, merged, base, app, rec := mountedApp(t)
	if recs := mountRecords(t, root); len(recs) != 1 {
		t.Fatalf("mount records: %v, want one", recs)
	}
	refusedAsMounted(t, "rmi", storeCLI(t, root, "rmi", "acme/app:1.0"), merged)
	refusedAsMounted(t, "rmi -f by id", storeCLI(t, root, "rmi", "-f", app.ID.Short()), merged)

	// Taking its name away leaves the mounted image dangling: prune keeps it.
	mustOK(t, "tag", storeCLI(t, root, "tag", "busybox", "acme/app:1.0"))
	r := storeCLI(t, root, "system", "prune", "-f")
	mustOK(t, "system prune", r)
	if strings.Contains(r.stdout, app.ID.Hex()) {
		t.Errorf("system prune removed the mounted image:\n%s", r.stdout)
	}
	checkImageView(t, merged)

	// Unmounted, it goes.
	umountCLI(t, merged, rec)
	r = storeCLI(t, root, "rmi", app.ID.Short())
	mustOK(t, "rmi after umount", r)
	if !strings.Contains(r.stdout, "Deleted: "+string(app.ID)) {
		t.Errorf("rmi after umount:\n%s", r.stdout)
	}
	if recs := mountRecords(t, root); len(recs) != 0 {
		t.Errorf("mount records left after umount and rmi: %v", recs)
	}

	// A daemon killed without cleaning up leaves a stale record, which
	// does not hold the image.
	mustOK(t, "mount-image", storeCLI(t, root, "mount-image", base.ID.Short(), merged))
	rec = daemonOf(t, merged)
	refusedAsMounted(t, "rmi -f", storeCLI(t, root, "rmi", "-f", base.ID.Short()), merged)
	if err := syscall.Kill(rec.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitGone(rec, 5*time.Second) {
		t.Fatalf("daemon %d survived SIGKILL", rec.PID)
	}
	r = storeCLI(t, root, "rmi", "-f", base.ID.Short())
	mustOK(t, "rmi after the daemon died", r)
	if !strings.Contains(r.stdout, "Deleted: "+string(base.ID)) {
		t.Errorf("rmi after the daemon died:\n%s", r.stdout)
	}
	if recs := mountRecords(t, root); len(recs) != 0 {
		t.Errorf("stale mount records kept: %v", recs)
	}
	mustOK(t, "umount of the dead mount", cli(t, "umount", merged))
}
