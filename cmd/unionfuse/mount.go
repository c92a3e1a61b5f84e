package main

import (
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/fs"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/mountcmd"
)

var mountCmd = &command{
	name:  "mount",
	usage: "unionfuse mount [-f] [-d] [-o OPT,...] LOWER[:LOWER...] [UPPER WORK] MERGED",
	help: `Mount the union of the LOWER directories (top first, colon-separated; write
'\:' for a colon inside a path) and, when given, the writable UPPER directory
at MERGED. WORK is an empty directory on the same filesystem as UPPER, used to
build copy-ups and whiteouts before they are renamed into UPPER. Without UPPER
and WORK the union is read-only: every write fails with EROFS.

The layers may also be given as options, the fuse-overlayfs way, in which
case the only arguments are an optional SOURCE (shown in /proc/mounts) and
MERGED:

  unionfuse mount -o lowerdir=L1:L2,upperdir=U,workdir=W [SOURCE] MERGED
  unionfuse -o lowerdir=L1:L2,upperdir=U,workdir=W [SOURCE] MERGED

Options for -o (comma-separated, -o may be repeated):
  lowerdir=L1:L2   lower layers, top first; L1:L2::D1::D2 adds data-only
                   layers D1, D2 (read only through metacopy redirects)
  lowerdir+=L, datadir+=D
                   the same, one layer per option (the new mount API's)
  upperdir=U       writable layer (needs workdir=)
  workdir=W        work directory on UPPER's filesystem
  ro, rw           read-only or read-write mount (ro with upperdir= shows
                   UPPER as the top layer and never writes to it)
  userxattr        keep overlay attributes in user.overlay.* (unprivileged)
  dev, nodev, suid, nosuid, exec, noexec, atime, noatime
                   the generic mount flags
  redirect_dir=on|follow|off|nofollow
                   as the kernel's: on (the default) renames directories
                   that have lower content, recording overlay.redirect;
                   follow and off refuse such renames (EXDEV); nofollow
                   also ignores redirects in the layers
  index=on|off     as the kernel's: on keeps the hard links of lower files
                   across copy-up (in WORK/index); off is the default
  metacopy=on|off  as the kernel's: on copies up only the metadata of a
                   file whose metadata alone changes (chmod, chown, ...);
                   the data follows on the first open for writing. Needs
                   redirect_dir=on; refused with userxattr; off is the
                   default
  passthrough=on|off
                   FUSE passthrough of file data (on by default as root,
                   Linux 6.9+)
  max_nodes=N      inodes the kernel may keep looked up before the least
                   recently used idle ones are dropped (default 65536;
                   0: no bound; Linux 6.16+)
  server[=DIR]     serve the union from this user's one union server for
                   DIR (default /), which serves every union mounted
                   under DIR: less memory per union and a faster mount
                   than a daemon per union; not with -f, -d or profiles

fuse-overlayfs's options, with its meaning:
  uidmapping=DISK:SHOWN:LEN[:...], gidmapping=...
                   ids DISK.. in the layers show as SHOWN.. in the mount
  squash_to_root, squash_to_uid=N, squash_to_gid=N
                   show every object as owned by root, or by N
  static_nlink     report a link count of 1 for every directory
  noacl            refuse POSIX ACLs (system.posix_acl_*)
  xino=on|auto|off off reports the layers' own inode numbers
  fsync=0, volatile
                   make fsync(2) a no-op (nothing survives a crash)
  allow_other, default_permissions
                   let other users use the mount (permissions are always
                   checked by the kernel)
  debug            same as -d
  context="...", timeout=N, xattr_permissions=0
                   accepted, without effect
An unknown option is an error.

Unless -f or -d is given, unionfuse mount starts a daemon and returns once the
union is visible at MERGED; it prints nothing on success. The daemon logs to
syslog when /dev/log exists, otherwise to ` + daemon.DefaultLogFile() + `
(--log overrides). It stops when the union is unmounted (unionfuse umount,
umount(8), fusermount3 -u) and unmounts on SIGTERM, SIGINT or SIGHUP.`,
	host:    true,
	options: optionsOf(mountFlags),
	own:     true,
	run:     runMount,
}

// mountArgs holds the flags of unionfuse mount.
type mountArgs = mountcmd.Args

// mountFlags returns the flag set of unionfuse mount.
func mountFlags() (*pflag.FlagSet, *mountArgs) {
	a := &mountArgs{}
	fset := pflag.NewFlagSet("mount", pflag.ContinueOnError)
	a.AddFlags(fset)
	return fset, a
}

func runMount(cmd *command, args []string) int {
	fset, a := mountFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	return mountUnion(cmd, a, pos, false)
}

// mountUnion builds the union's config from the flags and the positional
// arguments, validates it and mounts it (in a daemon unless -f or -d).
// With checkOnly it stops after validation. cmd is mount, for usage
// errors.
func mountUnion(cmd *command, a *mountArgs, pos []string, checkOnly bool) int {
	merged, cfg, err := a.Union(pos)
	if err != nil {
		return usageError(cmd, "%v", err)
	}
	if checkOnly {
		if err := cfg.Validate(merged); err != nil {
			return fail(err)
		}
		return exitOK
	}
	if !a.InForeground() {
		if err := a.Start(merged, cfg); err != nil {
			return fail(err)
		}
		return exitOK
	}
	return serveForeground(merged, cfg, a)
}

// serveForeground serves the union in this process until it is unmounted
// or a stop signal arrives; a gives the log file and the profiles.
func serveForeground(merged string, cfg fs.Config, a *mountArgs) int {
	stop := catchStopSignals()
	if err := a.Serve(merged, cfg, stop); err != nil {
		return fail(err)
	}
	return exitOK
}
