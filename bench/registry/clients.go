package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/unionfuse/unionfuse/bench/internal/tool"
)

// client is a tool that pulls into and pushes from a local store of its
// own: unionfuse, podman, or skopeo into podman's storage.
type client interface {
	Name() string
	// Pull fetches ref into the store in dir (made if missing).
	Pull(dir, ref string) error
	// PreparePush makes the image src of the store in dir ready to be
	// pushed as dst (a tag); it is not timed.
	PreparePush(dir, src, dst string) error
	// Push sends dst, prepared by PreparePush, to its registry.
	Push(dir, src, dst string) error
	// Remove removes the store in dir.
	Remove(dir string) error
}

// cpuUsed adds up the CPU time (user and system, with the descendants
// waited for) of the commands run; the harness runs one at a time.
var cpuUsed time.Duration

// command runs name with args and env added (tool.Run).
func command(env []string, name string, args ...string) error {
	cpu, err := tool.Run(env, name, args...)
	cpuUsed += cpu
	return err
}

// unionfuse is the unionfuse CLI with --root; name tells two builds
// apart (-baseline).
type unionfuse struct{ bin, name string }

func (u unionfuse) Name() string { return u.name }

func (u unionfuse) Pull(dir, ref string) error {
	return command(nil, u.bin, "pull", "-q", "--root", dir, ref)
}

func (u unionfuse) PreparePush(dir, src, dst string) error {
	return command(nil, u.bin, "tag", "--root", dir, src, dst)
}

func (u unionfuse) Push(dir, _, dst string) error {
	return command(nil, u.bin, "push", "-q", "--root", dir, dst)
}

func (u unionfuse) Remove(dir string) error { return os.RemoveAll(dir) }

// Load loads a docker-archive (layers as plain tarballs, as an image
// built or committed here has them) into the store in dir.
func (u unionfuse) Load(dir, archive string) error {
	return command(nil, u.bin, "load", "-q", "--root", dir, "-i", archive)
}

// podman is rootful podman with a store of its own (the kernel's overlay
// driver, as by default), runc and cgroupfs, and configuration files of
// its own (empty, and a storage.conf naming only the driver) so that
// nothing of the machine's applies.
type podman struct{ conf, storageConf string }

// env points podman (and skopeo) at the configuration files.
func (p podman) env() []string {
	return []string{"CONTAINERS_CONF=" + p.conf, "CONTAINERS_STORAGE_CONF=" + p.storageConf, "CONTAINERS_REGISTRIES_CONF=" + p.conf}
}

func (p podman) args(dir string, args ...string) []string {
	return append([]string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--storage-driver", "overlay", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}, args...)
}

func (p podman) Name() string { return "podman" }

func (p podman) Pull(dir, ref string) error {
	return command(p.env(), "podman", p.args(dir, "pull", "-q", "--tls-verify=false", ref)...)
}

func (p podman) PreparePush(dir, src, dst string) error {
	return command(p.env(), "podman", p.args(dir, "tag", src, dst)...)
}

func (p podman) Push(dir, _, dst string) error {
	return command(p.env(), "podman", p.args(dir, "push", "-q", "--tls-verify=false", dst)...)
}

func (p podman) Remove(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "root")); err == nil {
		if err := command(p.env(), "podman", p.args(dir, "system", "reset", "-f")...); err != nil {
			return err
		}
	}
	return os.RemoveAll(dir)
}

// skopeo copies between the registry and podman's storage (the same
// work as podman pull and push, without podman's own steps).
type skopeo struct{ podman }

func (s skopeo) Name() string { return "skopeo copy" }

// storage names an image of the store in dir for skopeo.
func (s skopeo) storage(dir, ref string) string {
	return fmt.Sprintf("containers-storage:[overlay@%s+%s]%s", filepath.Join(dir, "root"), filepath.Join(dir, "run"), ref)
}

func (s skopeo) Pull(dir, ref string) error {
	return command(s.env(), "skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false", "docker://"+ref, s.storage(dir, ref))
}

func (s skopeo) PreparePush(string, string, string) error { return nil }

func (s skopeo) Push(dir, src, dst string) error {
	return command(s.env(), "skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false", s.storage(dir, src), "docker://"+dst)
}
