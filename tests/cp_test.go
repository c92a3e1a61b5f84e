package tests

// unionfuse cp end to end: both ways, a stopped container, tar streams,
// docker's rules for trailing slashes and /., -a, and symbolic links of
// the container that must never reach the host's files.

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

func TestCp(t *testing.T)         { testCp(t, false) }
func TestCpRootless(t *testing.T) { testCp(t, true) }

// tarNames lists the entry names of a tarball, sorted ("" when it is
// none).
func tarNames(b []byte) string {
	var names []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, strings.TrimSuffix(h.Name, "/"))
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

func testCp(t *testing.T, rootless bool) {
	mode := requireContainers(t, rootless, false)
	subtest := func(name string, f func(t *testing.T, e *containerEnv)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, newContainerEnv(t, mode))
		})
	}

	subtest("symbolic links stay inside", func(t *testing.T, e *containerEnv) {
		mustSucceed(t, "run", e.u("run", "--name", "links", "busybox", "sh", "-c",
			"echo container-secret > /etc/shadow; ln -s /etc/shadow /x; ln -s / /up; mkdir /d; ln -s ../../../../.. /d/dots; ln -s "+e.dir+" /hostdir"))
		out := filepath.Join(e.dir, "out")
		os.Mkdir(out, 0o777)
		os.Chmod(out, 0o777)
		mustSucceed(t, "cp -L", e.u("cp", "-L", "links:/x", out+"/shadow"))
		if b, err := os.ReadFile(filepath.Join(out, "shadow")); err != nil || string(b) != "container-secret\n" {
			t.Errorf("cp -L links:/x (-> /etc/shadow) copied %q, %v; want the container's /etc/shadow", b, err)
		}
		mustSucceed(t, "cp", e.u("cp", "links:/x", out+"/link"))
		if target, err := os.Readlink(filepath.Join(out, "link")); err != nil || target != "/etc/shadow" {
			t.Errorf("cp links:/x copied %q, %v; want the link itself", target, err)
		}
		r := e.u("cp", "links:/up/etc/shadow", "-")
		if r.code != 0 || !strings.Contains(r.stdout, "container-secret") {
			t.Errorf("cp links:/up/etc/shadow -: exit %d, %q", r.code, r.stderr)
		}
		// Writing through links: /d/dots/.. and /hostdir (the host's
		// e.dir by name) are the container's own paths.
		src := filepath.Join(e.dir, "payload")
		os.WriteFile(src, []byte("payload\n"), 0o644)
		mustSucceed(t, "cp to /d/dots/..", e.u("cp", src, "links:/d/dots/.."))
		// "/d/dots/.." is "/d" (cleaned as a path, as docker does).
		if r := e.u("cp", "links:/d/payload", "-"); tarNames([]byte(r.stdout)) != "payload" {
			t.Errorf("cp to /d/dots/..: not at the container's /d/payload (%s)", r.stderr)
		}
		r = e.u("cp", src, "links:/hostdir/escaped")
		if _, err := os.Stat(filepath.Join(e.dir, "escaped")); err == nil {
			t.Fatalf("cp into a container's link to a host path wrote the host's %s/escaped", e.dir)
		}
		if r.code != 1 {
			t.Errorf("cp into /hostdir (a dangling link inside the container): exit %d, want 1", r.code)
		}
		if _, err := os.Stat("/payload"); err == nil {
			t.Error("cp to /d/dots/.. wrote the host's /payload")
		}
	})

	subtest("stopped container and tar streams", func(t *testing.T, e *containerEnv) {
		mustSucceed(t, "run", e.u("run", "--name", "stopped", "-v", "vol:/vol", "busybox", "sh", "-c",
			"mkdir -p /d/sub; echo a > /d/a; echo b > /d/sub/b; echo v > /vol/v"))
		r := e.u("cp", "stopped:/d", "-")
		if names := tarNames([]byte(r.stdout)); r.code != 0 || names != "d d/a d/sub d/sub/b" {
			t.Errorf("cp stopped:/d -: exit %d, entries %q (%s)", r.code, names, r.stderr)
		}
		r = e.u("cp", "stopped:/vol/v", "-")
		if names := tarNames([]byte(r.stdout)); r.code != 0 || names != "v" {
			t.Errorf("cp stopped:/vol/v - (a volume): exit %d, entries %q (%s)", r.code, names, r.stderr)
		}
		// A tar stream in.
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "in/", Typeflag: tar.TypeDir, Mode: 0o755})
		tw.WriteHeader(&tar.Header{Name: "in/f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3})
		tw.Write([]byte("hi\n"))
		tw.Close()
		cmd := e.command("cp", "-", "stopped:/d/sub")
		cmd.Stdin = &buf
		mustSucceed(t, "cp - stopped:/d/sub", run(t, cmd))
		cmd = e.command("cp", "-", "stopped:/d/a")
		cmd.Stdin = strings.NewReader("")
		expect(t, "cp - to a file", run(t, cmd), 1, "", "must be a directory")
		// Both ways through the host, docker's rules.
		host := filepath.Join(e.dir, "host")
		os.Mkdir(host, 0o777)
		os.Chmod(host, 0o777)
		mustSucceed(t, "cp dir", e.u("cp", "stopped:/d", host+"/copy"))
		mustSucceed(t, "cp dir into dir", e.u("cp", "stopped:/d", host+"/copy"))
		mustSucceed(t, "cp dir/.", e.u("cp", "stopped:/d/.", host+"/content"))
		for _, p := range []string{"copy/a", "copy/sub/in/f", "copy/d/a", "content/a", "content/sub/b"} {
			if _, err := os.Stat(filepath.Join(host, p)); err != nil {
				t.Errorf("after the copies: %v", err)
			}
		}
		expect(t, "file to a missing dir/", e.u("cp", host+"/copy/a", "stopped:/nodir/"), 1, "", "no such directory")
		expect(t, "missing source", e.u("cp", "stopped:/nosuch", host), 1, "", "Could not find the file /nosuch in container")
		mustSucceed(t, "cp host dir in", e.u("cp", host+"/content", "stopped:/"))
		expect(t, "start", e.u("start", "-a", "stopped"), 0, "", "")
		r = e.u("cp", "stopped:/content/sub/b", "-")
		if names := tarNames([]byte(r.stdout)); names != "b" {
			t.Errorf("cp stopped:/content/sub/b -: %q", names)
		}
		expect(t, "two containers", e.u("cp", "a:/x", "b:/y"), 1, "", "copying between containers is not supported")
		expect(t, "no container", e.u("cp", "/x", "/y"), 1, "", "must specify at least one container source")
	})

	subtest("owners", func(t *testing.T, e *containerEnv) {
		if rootless {
			t.Skip("-a with other owners needs subordinate ids")
		}
		mustSucceed(t, "run", e.u("run", "--name", "own", "busybox", "true"))
		src := filepath.Join(e.dir, "owned")
		os.WriteFile(src, []byte("x"), 0o644)
		os.Chown(src, 1234, 4321)
		mustSucceed(t, "cp", e.u("cp", src, "own:/plain"))
		mustSucceed(t, "cp -a", e.u("cp", "-a", src, "own:/kept"))
		out := filepath.Join(e.dir, "out")
		os.Mkdir(out, 0o755)
		for name, want := range map[string][2]int{"plain": {0, 0}, "kept": {1234, 4321}} {
			r := e.u("cp", "own:/"+name, "-")
			tr := tar.NewReader(strings.NewReader(r.stdout))
			h, err := tr.Next()
			if err != nil {
				t.Fatalf("cp own:/%s -: %v (%s)", name, err, r.stderr)
			}
			if h.Uid != want[0] || h.Gid != want[1] {
				t.Errorf("/%s in the container: owner %d:%d, want %d:%d", name, h.Uid, h.Gid, want[0], want[1])
			}
			io.Copy(io.Discard, tr)
		}
		mustSucceed(t, "cp out", e.u("cp", "own:/kept", out+"/k"))
		var st syscall.Stat_t
		if syscall.Lstat(out+"/k", &st); st.Uid != 0 {
			t.Errorf("a file copied out belongs to %d, want the caller", st.Uid)
		}
	})
}
