package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/docker/go-units"
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/internal/format"
	"github.com/unionfuse/unionfuse/runner"
	"golang.org/x/sys/unix"
)

var infoCmd = &command{
	name:  "info",
	usage: "unionfuse info [-f FORMAT]",
	help: `Print system-wide information in docker info's layout: containers by
state, images, the storage driver (unionfuse) and the filesystem under the
store, the cgroup driver and version, the kernel, the operating system,
CPUs, memory, and the store's root (Docker Root Dir). --format takes a Go
template over docker's field names (.Containers, .ContainersRunning,
.Images, .Driver, .DockerRootDir, .NCPU, .MemTotal, ...) or json.`,
	options: optionsOf(infoFlags),
	run:     runInfo,
}

// systemInfo is what info prints, with docker's field names.
type systemInfo struct {
	Containers, ContainersRunning, ContainersPaused, ContainersStopped, Images int
	ServerVersion, Driver                                                      string
	DriverStatus                                                               [][2]string
	LoggingDriver, CgroupDriver, CgroupVersion                                 string
	KernelVersion, OperatingSystem, OSType, Architecture                       string
	NCPU                                                                       int
	MemTotal                                                                   int64
	Name, DockerRootDir                                                        string
}

type infoArgs struct {
	containerArgs
	format string
}

func infoFlags() (*pflag.FlagSet, *infoArgs) {
	a := &infoArgs{}
	fset := newContainerFlags("info", &a.containerArgs)
	fset.StringVarP(&a.format, "format", "f", "", "print through the Go `TEMPLATE`, or json")
	return fset, a
}

func runInfo(cmd *command, args []string) int {
	fset, a := infoFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(cmd, "takes no arguments")
	}
	return a.withRunner(func(r *runner.Runner) int {
		info, err := gatherInfo(r)
		if err != nil {
			return fail(err)
		}
		if a.format != "" {
			w, err := format.New(os.Stdout, a.format, nil)
			if err != nil {
				return usageError(cmd, "%v", err)
			}
			return printRows(w, []systemInfo{info})
		}
		printInfo(info)
		return exitOK
	})
}

// gatherInfo collects systemInfo.
func gatherInfo(r *runner.Runner) (systemInfo, error) {
	info := systemInfo{ServerVersion: version, Driver: "unionfuse", LoggingDriver: "json-file", CgroupDriver: "cgroupfs",
		OSType: runtime.GOOS, NCPU: runtime.NumCPU(), DockerRootDir: r.Store().Root()}
	all, err := r.List()
	if err != nil {
		return info, err
	}
	for _, c := range all {
		info.Containers++
		switch c.Status() {
		case runner.StatusRunning:
			info.ContainersRunning++
		case runner.StatusPaused:
			info.ContainersPaused++
		default:
			info.ContainersStopped++
		}
	}
	imgs, err := r.Store().Images()
	if err != nil {
		return info, err
	}
	info.Images = len(imgs)
	info.DriverStatus = [][2]string{{"Backing Filesystem", backingFS(info.DockerRootDir)}}
	info.CgroupVersion = "1"
	var fs unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC {
		info.CgroupVersion = "2"
	}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		info.KernelVersion = unix.ByteSliceToString(uts.Release[:])
		info.Architecture = unix.ByteSliceToString(uts.Machine[:])
		info.Name = unix.ByteSliceToString(uts.Nodename[:])
	}
	info.OperatingSystem = osRelease()
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		info.MemTotal = int64(si.Totalram) * int64(si.Unit)
	}
	return info, nil
}

// backingFS names the filesystem below dir as docker does.
func backingFS(dir string) string {
	var fs unix.Statfs_t
	if unix.Statfs(dir, &fs) != nil {
		return "<unknown>"
	}
	names := map[int64]string{unix.EXT4_SUPER_MAGIC: "extfs", unix.XFS_SUPER_MAGIC: "xfs", unix.BTRFS_SUPER_MAGIC: "btrfs",
		unix.TMPFS_MAGIC: "tmpfs", unix.OVERLAYFS_SUPER_MAGIC: "overlayfs", 0x2fc12fc1: "zfs", unix.FUSE_SUPER_MAGIC: "fuse"}
	if n, ok := names[int64(fs.Type)]; ok {
		return n
	}
	return fmt.Sprintf("<unknown: %#x>", fs.Type)
}

// osRelease is /etc/os-release's PRETTY_NAME.
func osRelease() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return runtime.GOOS
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}

// printInfo prints info in docker info's layout.
func printInfo(i systemInfo) {
	fmt.Printf("Client:\n Context:    default\n Debug Mode: false\n\nServer:\n")
	fmt.Printf(" Containers: %d\n  Running: %d\n  Paused: %d\n  Stopped: %d\n", i.Containers, i.ContainersRunning, i.ContainersPaused, i.ContainersStopped)
	fmt.Printf(" Images: %d\n Server Version: %s\n Storage Driver: %s\n", i.Images, i.ServerVersion, i.Driver)
	for _, kv := range i.DriverStatus {
		fmt.Printf("  %s: %s\n", kv[0], kv[1])
	}
	fmt.Printf(" Logging Driver: %s\n Cgroup Driver: %s\n Cgroup Version: %s\n", i.LoggingDriver, i.CgroupDriver, i.CgroupVersion)
	fmt.Printf(" Kernel Version: %s\n Operating System: %s\n OSType: %s\n Architecture: %s\n", i.KernelVersion, i.OperatingSystem, i.OSType, i.Architecture)
	fmt.Printf(" CPUs: %d\n Total Memory: %s\n Name: %s\n Docker Root Dir: %s\n Debug Mode: false\n", i.NCPU, units.BytesSize(float64(i.MemTotal)), i.Name, i.DockerRootDir)
}
