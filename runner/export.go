package runner

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/moby/go-archive"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/internal/reexec"
	"golang.org/x/sys/unix"
)

// envExport names the root that the reexec.Exporter role tars up from
// inside a chroot (see Export).
const envExport = "UNIONFUSE_EXPORT_ROOT"

// Export writes the container's root filesystem (its image's layers and
// its own, merged) to w as a tarball, as docker export does. A container
// that is not running is mounted for the time of the export.
//
// A running container can swap a directory for a symbolic link while the
// tree is walked; a walk by path from the host would then follow the link
// to the host's files. So, where it can (root, also of a user namespace),
// the walk runs in a process chrooted into the container's root, as
// Docker's chrootarchive does, where every link resolves inside it.
func (r *Runner) Export(c *Container, w io.Writer) error {
	root := c.Rootfs()
	if !c.Running() {
		lock, err := lockMonitor(c)
		if err != nil {
			return err
		}
		defer lock.Close()
		if _, err := r.Mount(c); err != nil {
			return err
		}
		defer r.Unmount(c)
	}
	if os.Geteuid() == 0 {
		return exportChrooted(root, w)
	}
	rc, err := archive.TarWithOptions(root, &archive.TarOptions{})
	if err != nil {
		return fmt.Errorf("export %s: %w", c.ShortID(), err)
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return fmt.Errorf("export %s: %w", c.ShortID(), err)
	}
	return nil
}

// exportChrooted tars root from a child process chrooted into it.
func exportChrooted(root string, w io.Writer) error {
	daemon.CloseInheritedOnExec()
	cmd := reexec.Command(reexec.Exporter, "unionfuse-export", []string{envExport + "=" + root})
	cmd.Stdout = w
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("export: %s", msg)
	}
	return nil
}

// runExporter is the main function of the chrooted export of Export: it
// chroots into the root named by the environment and writes it to stdout
// as a tarball.
func runExporter() int {
	root := os.Getenv(envExport)
	if err := unix.Chroot(root); err != nil {
		fmt.Fprintf(os.Stderr, "chroot %s: %v\n", root, err)
		return 1
	}
	if err := os.Chdir("/"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rc, err := archive.TarWithOptions("/", &archive.TarOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer rc.Close()
	if _, err := io.Copy(os.Stdout, rc); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
