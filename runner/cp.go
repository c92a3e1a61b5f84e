package runner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/go-archive"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/reexec"
	"golang.org/x/sys/unix"
)

// Copying files in and out of a container (unionfuse cp), as docker's
// daemon does it for docker cp: the CLI's side (which end is a directory,
// trailing slashes, "/.", -L) is go-archive's CopyInfo rules, and this
// file is the container's side — stat a path, tar a path, untar into a
// directory.
//
// Every path is resolved by the kernel inside a chroot: a process in the
// reexec.Copier role, in a mount namespace of its own (a user namespace
// too when not root), binds the container's volumes over its root,
// chroots into it and does the one operation. A symbolic link in the
// container (/x -> /etc/shadow) then names the container's file and never
// the host's, and a path with ".." stops at the container's root, however
// the container's files change meanwhile — the reason docker's
// chrootarchive exists. A container that is not running is mounted for
// the time of the copy (Export does the same).

// PathStat is a path of a container as docker's stat of it: the name, its
// size, mode and time, and for a symbolic link the path it resolves to
// inside the container.
type PathStat struct {
	Name       string      `json:"name"`
	Size       int64       `json:"size"`
	Mode       os.FileMode `json:"mode"`
	Mtime      time.Time   `json:"mtime"`
	LinkTarget string      `json:"linkTarget"`
}

// ContainerRoot is a container's root opened for copying: mounted while
// it is open when the container is not running.
type ContainerRoot struct {
	c     *Container
	root  string
	close func()
}

// OpenRoot opens c's root for Stat, Archive and Extract; Close releases
// it (and unmounts what OpenRoot mounted).
func (r *Runner) OpenRoot(c *Container) (*ContainerRoot, error) {
	cr := &ContainerRoot{c: c, root: c.Rootfs(), close: func() {}}
	if c.Running() {
		return cr, nil
	}
	lock, err := lockMonitor(c)
	if err != nil {
		return nil, err
	}
	if _, err := r.Mount(c); err != nil {
		lock.Close()
		return nil, err
	}
	cr.close = func() {
		r.Unmount(c)
		lock.Close()
	}
	return cr, nil
}

// Close releases the root.
func (cr *ContainerRoot) Close() { cr.close() }

// Stat describes path in the container, its last element not followed
// (docker's container stat path).
func (cr *ContainerRoot) Stat(path string) (PathStat, error) {
	var out bytes.Buffer
	if err := cr.run(copyOp{Op: "stat", Path: path}, nil, &out); err != nil {
		return PathStat{}, err
	}
	var st PathStat
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		return PathStat{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return st, nil
}

// Archive writes path of the container to w as a tarball whose entries
// are named after path's last element, as docker's archive of a path.
func (cr *ContainerRoot) Archive(path string, w io.Writer) error {
	return cr.run(copyOp{Op: "archive", Path: path}, nil, w)
}

// Extract unpacks the tarball content into the directory dir of the
// container (every link on the way resolved inside it). Files belong to
// the container's root unless keepOwners (cp -a), which keeps the owners
// the tarball names.
func (cr *ContainerRoot) Extract(dir string, content io.Reader, keepOwners bool) error {
	// Without root the files are the caller's, the container's root,
	// already: no chown (which the FUSE server would refuse).
	op := copyOp{Op: "extract", Path: dir, KeepOwners: keepOwners, NoChown: !keepOwners && os.Geteuid() != 0}
	return cr.run(op, content, io.Discard)
}

// copyOp is what the copier process is asked, in envCopy.
type copyOp struct {
	Op         string // stat, archive or extract
	Root       string
	Path       string
	Volumes    []Volume
	KeepOwners bool
	NoChown    bool
}

// envCopy carries the copyOp to the reexec.Copier process.
const envCopy = "UNIONFUSE_COPY"

// run runs op in a copier process with stdin and stdout.
func (cr *ContainerRoot) run(op copyOp, stdin io.Reader, stdout io.Writer) error {
	op.Root = cr.root
	for _, v := range cr.c.Config.Volumes {
		if v.Kind() != MountTmpfs {
			op.Volumes = append(op.Volumes, v)
		}
	}
	spec, err := json.Marshal(op)
	if err != nil {
		return err
	}
	daemon.CloseInheritedOnExec()
	cmd := reexec.Command(reexec.Copier, "unionfuse-cp", []string{envCopy + "=" + string(spec)})
	cmd.Stdin, cmd.Stdout = stdin, stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: unix.CLONE_NEWNS}
	if os.Geteuid() != 0 {
		// Without root: a user namespace of its own, the caller its root,
		// for the right to mount and chroot.
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
		}
	}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return errors.New(msg)
	}
	return nil
}

// runCopier is the main function of the reexec.Copier role: it builds the
// container's view (its root and volumes) in its own mount namespace,
// chroots into it and does the copyOp of envCopy on stdin and stdout.
func runCopier() int {
	var op copyOp
	if err := json.Unmarshal([]byte(os.Getenv(envCopy)), &op); err != nil {
		fmt.Fprintf(os.Stderr, "cp: %v\n", err)
		return 1
	}
	if err := enterCopyRoot(op); err != nil {
		fmt.Fprintf(os.Stderr, "cp: %v\n", err)
		return 1
	}
	var err error
	switch op.Op {
	case "stat":
		err = copyStat(op.Path)
	case "archive":
		err = copyArchive(op.Path)
	case "extract":
		err = copyExtract(op.Path, op.KeepOwners, op.NoChown)
	default:
		err = fmt.Errorf("unknown operation %q", op.Op)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// enterCopyRoot binds the volumes over the root (resolved inside it, as
// the init does) and chroots into it.
func enterCopyRoot(op copyOp) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	for _, v := range op.Volumes {
		if err := bindIn(op.Root, v.Source, v.Dest, v.ReadOnly); err != nil {
			return fmt.Errorf("volume %s: %w", v.Dest, err)
		}
	}
	if err := unix.Chroot(op.Root); err != nil {
		return fmt.Errorf("chroot %s: %w", op.Root, err)
	}
	return os.Chdir("/")
}

// containerPath is path as docker's daemon takes it: absolute, with a
// trailing "/" or "/." kept (they say "a directory" and "its content").
func containerPath(path string) string {
	return archive.PreserveTrailingDotOrSeparator(filepath.Join("/", path), path)
}

// resolveParent resolves every link of path but its last element (docker's
// ResolvePath); inside the chroot, inside the container.
func resolveParent(path string) (resolved, abs string, err error) {
	abs = containerPath(path)
	dir, base := filepath.Split(abs)
	rdir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", "", notFound(path, err)
	}
	return strings.TrimSuffix(rdir, "/") + "/" + base, abs, nil
}

// notFound turns a missing path into docker's message.
func notFound(path string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("Could not find the file %s in container", path) //nolint:staticcheck // docker's words
	}
	return err
}

// statOf stats resolved, the container's path abs.
func statOf(resolved, abs string) (PathStat, error) {
	fi, err := os.Lstat(resolved)
	if err != nil {
		return PathStat{}, notFound(abs, err)
	}
	st := PathStat{Name: filepath.Base(abs), Size: fi.Size(), Mode: fi.Mode(), Mtime: fi.ModTime()}
	if fi.Mode()&os.ModeSymlink != 0 {
		// A dangling link is no error (docker's FollowSymlinkInScope).
		target, err := securejoin.SecureJoin("/", abs)
		if err != nil {
			return PathStat{}, err
		}
		st.LinkTarget = target
	}
	return st, nil
}

func copyStat(path string) error {
	resolved, abs, err := resolveParent(path)
	if err != nil {
		return err
	}
	st, err := statOf(resolved, abs)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(st)
}

func copyArchive(path string) error {
	resolved, abs, err := resolveParent(path)
	if err != nil {
		return err
	}
	if _, err := statOf(resolved, abs); err != nil {
		return err
	}
	dir, base := archive.SplitPathDirEntry(resolved)
	rc, err := archive.TarWithOptions(dir, archive.TarResourceRebaseOpts(base, filepath.Base(abs)))
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(os.Stdout, rc)
	return err
}

func copyExtract(path string, keepOwners, noChown bool) error {
	abs := containerPath(path)
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return notFound(path, err)
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return notFound(path, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("extraction point %s is not a directory", path)
	}
	opts := &archive.TarOptions{NoOverwriteDirNonDir: true}
	switch {
	case noChown:
		opts.NoLchown = true
	case !keepOwners:
		opts.ChownOpts = &archive.ChownOpts{UID: 0, GID: 0}
	}
	return archive.Untar(os.Stdin, resolved, opts)
}
