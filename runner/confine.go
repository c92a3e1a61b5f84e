package runner

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A container's root is not the host's root: as Docker does, the init
// masks the parts of /proc and /sys that reach the host's kernel, makes
// the kernel's tunables read-only, and keeps only Docker's default
// capabilities for the command (no CAP_SYS_ADMIN: no remounting a
// read-only volume or root, no new mounts, no module loading).

// maskedPaths are hidden (an empty read-only file or directory over
// them); readonlyPaths are bound read-only onto themselves. Docker's lists.
var (
	maskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// confinePaths masks and write-protects the host-reaching paths below
// root (after /proc and /sys are mounted there). A path that does not
// exist is skipped.
func confinePaths(root string) error {
	for _, p := range maskedPaths {
		target := filepath.Join(root, p)
		fi, err := os.Lstat(target)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", target, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0")
		} else {
			err = unix.Mount("/dev/null", target, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	for _, p := range readonlyPaths {
		target := filepath.Join(root, p)
		if _, err := os.Lstat(target); err != nil {
			continue
		}
		if err := unix.Mount(target, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("protect %s: %w", p, err)
		}
		if err := remountReadOnly(target); err != nil {
			return fmt.Errorf("protect %s: %w", p, err)
		}
	}
	return nil
}

// defaultCaps are the capabilities a container's root keeps: Docker's
// default set.
var defaultCaps = []uintptr{
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FSETID, unix.CAP_FOWNER, unix.CAP_MKNOD,
	unix.CAP_NET_RAW, unix.CAP_SETGID, unix.CAP_SETUID, unix.CAP_SETFCAP, unix.CAP_SETPCAP,
	unix.CAP_NET_BIND_SERVICE, unix.CAP_SYS_CHROOT, unix.CAP_KILL, unix.CAP_AUDIT_WRITE,
}

// dropBoundingCaps removes every capability outside caps (defaultCaps
// unless --cap-add, --cap-drop or --privileged) from the bounding set, so
// that no program the command runs (set-user-ID or file capabilities
// included) can gain them.
func dropBoundingCaps(caps []uintptr) error {
	keep := map[uintptr]bool{}
	for _, c := range caps {
		keep[c] = true
	}
	for c := uintptr(0); c <= unix.CAP_LAST_CAP; c++ {
		if keep[c] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	return nil
}

// limitCaps sets the effective, permitted and inheritable capabilities to
// caps (for a command that runs as root; a command that runs as another
// user has none after setuid).
func limitCaps(caps []uintptr) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	var want [2]uint32
	for _, c := range caps {
		want[c/32] |= 1 << (c % 32)
	}
	for i := range data {
		data[i].Effective &= want[i]
		data[i].Permitted &= want[i]
		data[i].Inheritable &= want[i]
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}
