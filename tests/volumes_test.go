package tests

// Volumes end to end: named and anonymous volumes in the store, filled
// from the image, kept from removal while in use, removed with their
// container (rm -v, --rm), --mount and --tmpfs; as root and rootless.

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

func TestVolumes(t *testing.T)         { testVolumes(t, false) }
func TestVolumesRootless(t *testing.T) { testVolumes(t, true) }

func testVolumes(t *testing.T, rootless bool) {
	mode := requireContainers(t, rootless, false)
	subtest := func(name string, f func(t *testing.T, e *containerEnv)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, newContainerEnv(t, mode))
		})
	}
	caller := uint32(0)
	if rootless {
		caller = nobody
	}

	subtest("named volume filled from the image", func(t *testing.T, e *containerEnv) {
		// busybox's /etc lands in the new volume; then the volume is what
		// the next container sees, its writes kept.
		r := e.u("run", "--rm", "-v", "etcvol:/etc", "busybox", "sh", "-c", "grep -c root /etc/passwd; echo kept > /etc/new")
		expect(t, "run -v etcvol:/etc", r, 0, "1\n", "")
		r = e.u("run", "--rm", "-v", "etcvol:/data:ro", "busybox", "sh", "-c", "cat /data/new; touch /data/x 2>/dev/null || echo ro")
		expect(t, "run again", r, 0, "kept\nro\n", "")
		expect(t, "volume ls", e.u("volume", "ls", "-q"), 0, "etcvol\n", "")
		data := filepath.Join(e.store, "volumes", "etcvol", "_data")
		r = e.u("volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Scope}} {{.Mountpoint}}", "etcvol")
		expect(t, "volume inspect", r, 0, "etcvol local local "+data+"\n", "")
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(data, "new"), &st); err != nil || st.Uid != caller {
			t.Errorf("the volume's file: %v, owner %d, want the container's root (%d on the host)", err, st.Uid, caller)
		}
		// A volume that is not empty is not filled again.
		r = e.u("run", "--rm", "-v", "etcvol:/bin", "busybox", "/bin/sh", "-c", "true")
		if r.code == 0 {
			t.Errorf("a non-empty volume over /bin was filled from the image (sh found)")
		}
	})

	subtest("anonymous volumes", func(t *testing.T, e *containerEnv) {
		mustSucceed(t, "run", e.u("run", "--name", "anon", "-v", "/anon", "--mount", "type=volume,target=/anon2", "busybox", "touch", "/anon/f", "/anon2/g"))
		vols := strings.Fields(e.u("volume", "ls", "-q").stdout)
		if len(vols) != 2 || len(vols[0]) != 64 {
			t.Fatalf("volume ls after run -v /anon: %q, want two anonymous volumes", vols)
		}
		r := e.u("inspect", "-f", "{{range .Mounts}}{{.Type}} {{.Destination}} {{.Driver}} {{.RW}};{{end}}", "anon")
		expect(t, "inspect Mounts", r, 0, "volume /anon local true;volume /anon2 local true;\n", "")
		mustSucceed(t, "rm -v", e.u("rm", "-v", "anon"))
		expect(t, "volume ls after rm -v", e.u("volume", "ls", "-q"), 0, "", "")
		mustSucceed(t, "run --rm -v /x", e.u("run", "--rm", "-v", "/x", "busybox", "true"))
		expect(t, "volume ls after run --rm", e.u("volume", "ls", "-q"), 0, "", "")
	})

	subtest("in use", func(t *testing.T, e *containerEnv) {
		expect(t, "volume create", e.u("volume", "create", "--label", "k=v", "used"), 0, "used\n", "")
		expect(t, "volume create again", e.u("volume", "create", "used"), 0, "used\n", "")
		mustSucceed(t, "run", e.u("run", "--name", "user", "-v", "used:/v", "busybox", "sh", "-c", "echo 12345 > /v/f"))
		expect(t, "volume rm in use", e.u("volume", "rm", "used"), 1, "", "remove used: volume is in use - [")
		expect(t, "volume rm -f in use", e.u("volume", "rm", "-f", "used"), 1, "", "volume is in use")
		expect(t, "ls dangling", e.u("volume", "ls", "-q", "--filter", "dangling=true"), 0, "", "")
		expect(t, "ls label", e.u("volume", "ls", "--format", "{{.Name}} {{.Labels}}", "--filter", "label=k"), 0, "used k=v\n", "")
		r := e.u("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}")
		if !strings.Contains(r.stdout, "Local Volumes 1 1\n") {
			t.Errorf("system df: %q, want a Local Volumes row with one active volume", r.stdout)
		}
		expect(t, "prune -a keeps it", e.u("volume", "prune", "-f", "-a"), 0, "Total reclaimed space: 0B\n", "")
		mustSucceed(t, "rm", e.u("rm", "user"))
		expect(t, "prune keeps a named one", e.u("volume", "prune", "-f"), 0, "Total reclaimed space: 0B\n", "")
		expect(t, "prune -a", e.u("volume", "prune", "-f", "-a"), 0, "Deleted Volumes:\nused\n\nTotal reclaimed space: 6B\n", "")
		expect(t, "volume rm missing", e.u("volume", "rm", "used"), 1, "", "no such volume")
		expect(t, "volume rm -f missing", e.u("volume", "rm", "-f", "used"), 0, "used\n", "")
		expect(t, "bad name", e.u("run", "--rm", "-v", "a$b:/x", "busybox", "true"), 125, "", "invalid characters for a local volume name")
		if _, err := os.Stat(filepath.Join(e.dir, "used")); err == nil {
			t.Error("-v used:/v made a directory ./used (a bind) rather than a volume")
		}
	})

	subtest("mount and tmpfs", func(t *testing.T, e *containerEnv) {
		host := filepath.Join(e.dir, "hostdir")
		os.Mkdir(host, 0o777)
		os.WriteFile(filepath.Join(host, "h"), []byte("host\n"), 0o644)
		r := e.u("run", "--rm", "--mount", "type=bind,source="+host+",target=/h,readonly", "--tmpfs", "/t:size=1m",
			"--mount", "type=tmpfs,target=/t2", "-v", host+":/z:z", "busybox", "sh", "-c",
			"cat /h/h; touch /h/x 2>/dev/null || echo ro; grep -o ' /t tmpfs [a-z,]*,size=[0-9]*k' /proc/mounts; grep -c ' /t2 tmpfs' /proc/mounts; cat /z/h")
		expect(t, "run", r, 0, "host\nro\n /t tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k\n1\nhost\n", "")
		expect(t, "bad mount", e.u("run", "--rm", "--mount", "type=nfs,target=/x", "busybox", "true"), 125, "", "unsupported type")
		expect(t, "duplicate", e.u("run", "--rm", "-v", "/x", "--tmpfs", "/x", "busybox", "true"), 125, "", "duplicate mount point: /x")
	})
}

// TestVolumeFromImage: an image's VOLUME gets an anonymous volume filled
// with what the image has there; --rm removes it.
func TestVolumeFromImage(t *testing.T) {
	e := newContainerEnv(t, requireContainers(t, false, false))
	ctx := filepath.Join(e.dir, "ctx")
	os.Mkdir(ctx, 0o755)
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox\nRUN mkdir /seed && echo fromimage > /seed/f\nVOLUME /seed\n"), 0o644)
	mustSucceed(t, "build", e.u("build", "-q", "-t", "withvol", ctx))
	mustSucceed(t, "run", e.u("run", "--name", "cv", "withvol", "sh", "-c", "cat /seed/f; echo mine > /seed/g"))
	vols := strings.Fields(e.u("volume", "ls", "-q").stdout)
	if len(vols) != 1 {
		t.Fatalf("volumes after a run of an image with VOLUME /seed: %q", vols)
	}
	if b, err := os.ReadFile(filepath.Join(e.store, "volumes", vols[0], "_data", "f")); err != nil || string(b) != "fromimage\n" {
		t.Errorf("the anonymous volume's f: %q, %v", b, err)
	}
	expect(t, "start again", e.u("start", "-a", "cv"), 0, "fromimage\n", "")
	mustSucceed(t, "rm", e.u("rm", "cv"))
	expect(t, "rm without -v keeps it", e.u("volume", "ls", "-q"), 0, vols[0]+"\n", "")
	expect(t, "named over VOLUME", e.u("run", "--rm", "-v", "seed:/seed", "withvol", "cat", "/seed/f"), 0, "fromimage\n", "")
	mustSucceed(t, "run --rm", e.u("run", "--rm", "withvol", "true"))
	expect(t, "volume ls", e.u("volume", "ls", "-q"), 0, strings.Join(sortedFields(vols[0]+" seed"), "\n")+"\n", "")
}

// sortedFields is s's words, sorted.
func sortedFields(s string) []string {
	f := strings.Fields(s)
	sort.Strings(f)
	return f
}
