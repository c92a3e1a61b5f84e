package runner

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// A container's /dev holds the devices of setupDev, those of --device
// and, with --privileged, every device of the host's /dev. As root the
// init makes each node (mknod, the host's type, numbers, mode and owner);
// without root, where mknod is denied, it bind-mounts the host's node.
// No devices cgroup limits what a process of the container may open (the
// cgroup library sets device rules through eBPF on cgroup v2, which this
// binary leaves out): a device is reachable when its node is there, so
// --device's "m" (mknod) is not enforced beyond the capability.

// hostDevSkip are the directories of the host's /dev not copied for a
// privileged container: its own terminals, shared memory and queues.
var hostDevSkip = map[string]bool{"pts": true, "shm": true, "mqueue": true, "fd": true}

// makeDevices makes the devices of --device and --privileged under
// root's /dev.
func makeDevices(root string, spec *initSpec) error {
	sec := spec.Config.Security
	if sec.Privileged {
		for _, d := range hostDevices() {
			// Best effort: a node the kernel will not make is left out.
			makeDevice(root, d, spec.Rootless, true)
		}
	}
	for _, d := range sec.Devices {
		if err := makeDevice(root, d, spec.Rootless, false); err != nil {
			return err
		}
	}
	return nil
}

// hostDevices are the character and block devices below the host's /dev.
func hostDevices() []Device {
	var out []Device
	filepath.WalkDir("/dev", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if e.IsDir() {
			if hostDevSkip[e.Name()] && filepath.Dir(p) == "/dev" {
				return filepath.SkipDir
			}
			return nil
		}
		if e.Type()&(fs.ModeDevice|fs.ModeCharDevice) != 0 {
			out = append(out, Device{Host: p, Container: p, Perms: "rwm"})
		}
		return nil
	})
	return out
}

// makeDevice makes the host's device d.Host at d.Container below root.
// A path that exists already is kept when keep (the devices setupDev
// bound), replaced otherwise.
func makeDevice(root string, d Device, rootless, keep bool) error {
	var st unix.Stat_t
	if err := unix.Stat(d.Host, &st); err != nil {
		return fmt.Errorf("error gathering device information while adding custom device %q: %w", d.Host, err)
	}
	typ := st.Mode & unix.S_IFMT
	if typ != unix.S_IFCHR && typ != unix.S_IFBLK {
		return fmt.Errorf("error gathering device information while adding custom device %q: not a device node", d.Host)
	}
	target, err := securejoin.SecureJoin(root, d.Container)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(target); err == nil {
		if keep {
			return nil
		}
		unix.Unmount(target, unix.MNT_DETACH)
		if err := os.Remove(target); err != nil {
			return fmt.Errorf("device %s: %w", d.Container, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	mode := st.Mode & 0o7777
	if !strings.Contains(d.Perms, "w") {
		mode &^= 0o222
	}
	if rootless {
		if err := os.WriteFile(target, nil, os.FileMode(mode)); err != nil {
			return err
		}
		if err := unix.Mount(d.Host, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("device %s: bind %s: %w", d.Container, d.Host, err)
		}
		return nil
	}
	if err := unix.Mknod(target, typ|mode, int(st.Rdev)); err != nil {
		return fmt.Errorf("device %s: mknod: %w", d.Container, err)
	}
	unix.Chmod(target, mode) // the umask must not narrow the host's mode
	return os.Lchown(target, int(st.Uid), int(st.Gid))
}
