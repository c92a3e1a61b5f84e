package main

import (
	"fmt"
	"os"
	"runtime"
	"text/tabwriter"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/internal/format"
	"golang.org/x/sys/unix"
)

// versionInfo is what `version` prints, with the fields of docker's
// version --format (one program is both client and server here).
type versionInfo struct {
	Client componentVersion
	Server componentVersion
}

// componentVersion is one side of versionInfo.
type componentVersion struct {
	Platform                                               struct{ Name string }
	Version, GitCommit, GoVersion, Os, Arch, KernelVersion string
	Context                                                string `json:",omitempty"`
}

func versionFlags() (*pflag.FlagSet, *string) {
	fset := pflag.NewFlagSet("version", pflag.ContinueOnError)
	f := fset.StringP("format", "f", "", "print through the Go `TEMPLATE` (.Client.Version, .Server.Version, ...), or json")
	return fset, f
}

// runVersion prints the version in docker's Client/Server layout.
func runVersion(cmd *command, args []string) int {
	fset, f := versionFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(cmd, "unexpected argument %q", pos[0])
	}
	v := componentVersion{Version: version, GitCommit: version, GoVersion: runtime.Version(), Os: runtime.GOOS, Arch: runtime.GOARCH}
	v.Platform.Name = "unionfuse"
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		v.KernelVersion = unix.ByteSliceToString(uts.Release[:])
	}
	info := versionInfo{Client: v, Server: v}
	info.Client.Context, info.Client.KernelVersion = "default", ""
	if *f != "" {
		w, err := format.New(os.Stdout, *f, nil)
		if err != nil {
			return usageError(cmd, "%v", err)
		}
		return printRows(w, []versionInfo{info})
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintf(tw, "Client:\n Version:\t%s\n Go version:\t%s\n Git commit:\t%s\n OS/Arch:\t%s/%s\n Context:\t%s\n\n",
		v.Version, v.GoVersion, v.GitCommit, v.Os, v.Arch, info.Client.Context)
	fmt.Fprintf(tw, "Server: %s\n Engine:\n  Version:\t%s\n  Go version:\t%s\n  Git commit:\t%s\n  OS/Arch:\t%s/%s\n  Kernel Version:\t%s\n",
		v.Platform.Name, v.Version, v.GoVersion, v.GitCommit, v.Os, v.Arch, v.KernelVersion)
	tw.Flush()
	return exitOK
}
