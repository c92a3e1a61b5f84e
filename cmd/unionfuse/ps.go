package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/internal/format"
	"github.com/unionfuse/unionfuse/runner"
)

var psCmd = &command{
	name:  "ps",
	usage: "unionfuse ps [-a] [-q] [-s] [-l] [-n N] [--no-trunc] [--filter K=V]... [--format FORMAT]",
	help: `List containers, as docker ps does: the running ones, or all with -a.
With -s, SIZE is what the container's own layer holds on disk, and
"virtual" adds its image's layers, which the containers of one image
share. A container whose monitor was killed is found and recorded as
exited here; ps never reads a container's mount, so a dead mount cannot
make it hang. --filter takes docker's id=, name=, label=KEY[=VALUE],
status=, ancestor=IMAGE, exited=N, before=C and since=C (values of one key
are alternatives, keys must all match); status= and exited= look at
stopped containers too. -l shows the latest created container, -n N the
N latest. --format takes a Go template (see docs/run.md) with the fields
ID, Image, Command, CreatedAt, RunningFor, Ports, Status, State, Size,
Names, Labels and Mounts; "table ..." prints a header.`,
	options: optionsOf(psFlags),
	run:     runPs,
}

type psArgs struct {
	containerArgs
	all, quiet, size, latest, noTrunc bool
	last                              int
	filters                           []string
	format                            string
}

func psFlags() (*pflag.FlagSet, *psArgs) {
	a := &psArgs{}
	fset := newContainerFlags("ps", &a.containerArgs)
	fset.BoolVarP(&a.all, "all", "a", false, "show all containers (default: running ones)")
	fset.BoolVarP(&a.quiet, "quiet", "q", false, "print container ids only")
	fset.BoolVarP(&a.size, "size", "s", false, "show the disk size of each container")
	fset.BoolVarP(&a.latest, "latest", "l", false, "show the latest created container (any status)")
	fset.IntVarP(&a.last, "last", "n", -1, "show the `N` latest created containers (any status)")
	fset.BoolVar(&a.noTrunc, "no-trunc", false, "print full ids and commands")
	fset.StringArrayVarP(&a.filters, "filter", "f", nil, "show only containers that match `KEY=VALUE`")
	fset.StringVar(&a.format, "format", "", "print each container through the Go `TEMPLATE`, or json")
	return fset, a
}

// psRow is one container as ps's --format sees it (docker's names).
type psRow struct {
	ID, Image, Command, CreatedAt, RunningFor, Ports, Status, State, Size, Names, Labels, Mounts string
}

// psHeader is the header of a ps table, by field.
var psHeader = map[string]string{"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
	"RunningFor": "CREATED", "Ports": "PORTS", "Status": "STATUS", "State": "STATE", "Size": "SIZE", "Names": "NAMES",
	"Labels": "LABELS", "Mounts": "MOUNTS"}

func runPs(cmd *command, args []string) int {
	fset, a := psFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(cmd, "unexpected argument %q", pos[0])
	}
	filter, err := parsePsFilter(a.filters)
	if err != nil {
		return usageError(cmd, "%v", err)
	}
	var out *format.Writer
	if !format.IsDefault(a.format) {
		if out, err = format.New(os.Stdout, a.format, psHeader); err != nil {
			return usageError(cmd, "%v", err)
		}
	}
	if a.latest {
		a.last = 1
	}
	return a.withRunner(func(r *runner.Runner) int {
		shown, err := a.containers(r, filter)
		if err != nil {
			return fail(err)
		}
		if out != nil && !a.quiet {
			for _, c := range shown {
				if err := out.Write(a.row(r, c)); err != nil {
					return fail(err)
				}
			}
			if err := out.Flush(); err != nil {
				return fail(err)
			}
			return exitOK
		}
		t := newTable()
		if !a.quiet {
			head := "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES"
			if a.size {
				head += "\tSIZE"
			}
			fmt.Fprintln(t, head)
		}
		for _, c := range shown {
			row := a.row(r, c)
			if a.quiet {
				fmt.Fprintln(t, row.ID)
				continue
			}
			line := strings.Join([]string{row.ID, row.Image, row.Command, row.RunningFor, row.Status, row.Ports, row.Names}, "\t")
			if a.size {
				line += "\t" + row.Size
			}
			fmt.Fprintln(t, line)
		}
		t.Flush()
		return exitOK
	})
}

// containers lists what ps shows, newest first: running ones (all with
// -a, or for a filter on status), those that pass --filter, the -n
// latest.
func (a *psArgs) containers(r *runner.Runner, filter psFilter) ([]*runner.Container, error) {
	all, err := r.List()
	if err != nil {
		return nil, err
	}
	before, since, err := filter.bounds(r)
	if err != nil {
		return nil, err
	}
	labels := imageLabels(r)
	var shown []*runner.Container
	for _, c := range all {
		if a.last >= 0 && len(shown) >= a.last {
			break
		}
		if !a.all && a.last < 0 && !filter.needsAll() && !c.Running() {
			continue
		}
		if filter.match(c, labels(c), before, since) {
			shown = append(shown, c)
		}
	}
	return shown, nil
}

// imageLabels returns the function that gives a container's labels: its
// own (the image's and --label's), or, for a container made before
// --label, its image's, each image read once.
func imageLabels(r *runner.Runner) func(*runner.Container) map[string]string {
	seen := map[cowcache.Digest]map[string]string{}
	return func(c *runner.Container) map[string]string {
		if c.Config.Labels != nil {
			return c.Config.Labels // the image's and --label's
		}
		if c.Image == "" {
			return nil
		}
		if l, ok := seen[c.Image]; ok {
			return l
		}
		var l map[string]string
		if img, err := r.Store().Image(string(c.Image)); err == nil && img.Config != nil {
			l = img.Config.Config.Labels
		}
		seen[c.Image] = l
		return l
	}
}

// row is c as ps prints it.
func (a *psArgs) row(r *runner.Runner, c *runner.Container) psRow {
	id, command := c.ShortID(), commandString(c.Config.Args)
	if a.noTrunc {
		id, command = c.ID, `"`+strings.Join(c.Config.Args, " ")+`"`
	}
	row := psRow{ID: id, Image: imageColumn(c), Command: command, CreatedAt: c.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
		RunningFor: createdString(c.Created), Ports: portsColumn(c), Status: statusString(c), State: string(c.Status()),
		Names: c.Name}
	if a.size {
		row.Size = sizeColumn(r, c)
	}
	var mounts []string
	for _, v := range c.Config.Volumes {
		mounts = append(mounts, mountColumn(v))
	}
	row.Mounts = strings.Join(mounts, ",")
	row.Labels = labelsColumn(c.Config.Labels)
	return row
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

// labelsColumn is "k1=v1,k2=v2", sorted, as docker ps's LABELS.
func labelsColumn(labels map[string]string) string {
	var kvs []string
	for k, v := range labels {
		kvs = append(kvs, k+"="+v)
	}
	sort.Strings(kvs)
	return strings.Join(kvs, ",")
}
