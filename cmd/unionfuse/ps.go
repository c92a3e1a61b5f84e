package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/runner"
)

var psCmd = &command{
	name:  "ps",
	usage: "unionfuse ps [-a] [-q] [-s]",
	help: `List containers, as docker ps does: the running ones, or all with -a.
With -s, SIZE is what the container's own layer holds on disk, and
"virtual" adds its image's layers, which the containers of one image
share. A container whose monitor was killed is found and recorded as
exited here; ps never reads a container's mount, so a dead mount cannot
make it hang.`,
	options: optionsOf(psFlags),
	run:     runPs,
}

type psArgs struct {
	containerArgs
	all, quiet, size bool
}

func psFlags() (*pflag.FlagSet, *psArgs) {
	a := &psArgs{}
	fset := newContainerFlags("ps", &a.containerArgs)
	fset.BoolVarP(&a.all, "all", "a", false, "show all containers (default: running ones)")
	fset.BoolVarP(&a.quiet, "quiet", "q", false, "print container ids only")
	fset.BoolVarP(&a.size, "size", "s", false, "show the disk size of each container")
	return fset, a
}

func runPs(cmd *command, args []string) int {
	fset, a := psFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(cmd, "unexpected argument %q", pos[0])
	}
	return a.withRunner(func(r *runner.Runner) int {
		all, err := r.List()
		if err != nil {
			return fail(err)
		}
		t := newTable()
		if !a.quiet {
			head := "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES"
			if a.size {
				head += "\tSIZE"
			}
			fmt.Fprintln(t, head)
		}
		for _, c := range all {
			if !a.all && !c.Running() {
				continue
			}
			if a.quiet {
				fmt.Fprintln(t, c.ShortID())
				continue
			}
			line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", c.ShortID(), imageColumn(c), commandString(c.Config.Args),
				createdString(c.Created), statusString(c), portsColumn(c), c.Name)
			if a.size {
				line += "\t" + sizeColumn(r, c)
			}
			fmt.Fprintln(t, line)
		}
		t.Flush()
		return exitOK
	})
}

// portsColumn lists a running container's published ports, as docker
// ps: "0.0.0.0:8080->80/tcp, 127.0.0.1:9090->90/tcp".
func portsColumn(c *runner.Container) string {
	if !c.Running() {
		return ""
	}
	var ports []string
	for _, p := range c.State.Ports {
		ports = append(ports, p.String())
	}
	return strings.Join(ports, ", ")
}

// imageColumn is what the container was created from, as given.
func imageColumn(c *runner.Container) string {
	switch {
	case c.ImageName != "":
		return c.ImageName
	case c.Image != "":
		return c.Image.Short()
	default:
		return "scratch"
	}
}

// sizeColumn is "1.2kB (virtual 64.2MB)".
func sizeColumn(r *runner.Runner, c *runner.Container) string {
	n, err := cowcache.DirSize(c.UpperDir())
	if err != nil {
		return "?"
	}
	virtual := n
	if c.Image != "" {
		if img, err := r.Store().Image(string(c.Image)); err == nil {
			virtual += img.Size
		}
	}
	return fmt.Sprintf("%s (virtual %s)", sizeString(n), sizeString(virtual))
}
