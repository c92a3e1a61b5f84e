package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/unionfuse/unionfuse/bench/internal/tool"
)

// command runs name with args and env added (tool.Run).
func command(env []string, name string, args ...string) error {
	_, err := tool.Run(env, name, args...)
	return err
}

// podman is rootful podman with a store per measurement (the kernel's
// overlay driver, as by default), runc and cgroupfs, and configuration
// files of its own (limits this machine allows, no registries, a
// storage.conf naming only the driver) so
// that nothing of the machine's applies. podman reads eStargz layers as
// the gzip they also are: this podman (4.3) has no lazy pulls.
type podman struct{ conf, storageConf string }

func newPodman(ws string) (podman, error) {
	p := podman{conf: filepath.Join(ws, "containers.conf"), storageConf: filepath.Join(ws, "storage.conf")}
	// Limits this machine allows (podman's default nofile is above its
	// hard limit, and runc fails to set it).
	if err := os.WriteFile(p.conf, []byte("[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n"), 0o644); err != nil {
		return p, err
	}
	// The roots are given on every command line; these are the defaults
	// podman insists on having.
	sc := fmt.Sprintf("[storage]\ndriver = \"overlay\"\nrunroot = %q\ngraphroot = %q\n", filepath.Join(ws, "podman-run"), filepath.Join(ws, "podman-root"))
	if err := os.WriteFile(p.registriesConf(), nil, 0o644); err != nil {
		return p, err
	}
	return p, os.WriteFile(p.storageConf, []byte(sc), 0o644)
}

func (p podman) command(dir string, args ...string) error {
	env := []string{"CONTAINERS_CONF=" + p.conf, "CONTAINERS_STORAGE_CONF=" + p.storageConf, "CONTAINERS_REGISTRIES_CONF=" + p.registriesConf()}
	return command(env, "podman", append([]string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--storage-driver", "overlay", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}, args...)...)
}

// registriesConf is an empty registries.conf beside containers.conf.
func (p podman) registriesConf() string {
	return filepath.Join(filepath.Dir(p.conf), "registries.conf")
}

func (p podman) pull(dir, ref string) error {
	return p.command(dir, "pull", "-q", "--tls-verify=false", ref)
}

func (p podman) run(dir, ref string, argv ...string) error {
	return p.command(dir, append([]string{"run", "--rm", "--network", "none", ref}, argv...)...)
}

func (p podman) remove(dir string) {
	if _, err := os.Stat(filepath.Join(dir, "root")); err == nil {
		p.command(dir, "system", "reset", "-f")
	}
	os.RemoveAll(dir)
}
