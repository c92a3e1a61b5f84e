package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/internal/format"
	"github.com/unionfuse/unionfuse/runner"
)

var volumeCmd = newGroup("volume", "unionfuse volume create|ls|inspect|rm|prune [OPTIONS]",
	`Manage volumes: directories of the store (volumes/NAME/_data) that
containers mount with -v NAME:/path or --mount source=NAME,target=/path,
and that outlive them. There is one driver, local, as docker's default.`,
	[]subcommand{
		{"create", volumeCreateCmd}, {"ls", volumeLsCmd}, {"list", volumeLsCmd},
		{"inspect", volumeInspectCmd}, {"rm", volumeRmCmd}, {"remove", volumeRmCmd},
		{"prune", volumePruneCmd},
	})

// volumeArgs are the flags of the volume subcommands (each takes those it
// needs).
type volumeArgs struct {
	storeFlags
	labels, filters, opts []string
	driver, format        string
	quiet, force, all     bool
}

func volumeSubFlags(name string) (*pflag.FlagSet, *volumeArgs) {
	a := &volumeArgs{}
	fset := pflag.NewFlagSet("volume "+name, pflag.ContinueOnError)
	a.storeFlags.add(fset)
	switch name {
	case "create":
		fset.StringArrayVarP(&a.labels, "label", "l", nil, "set the label `KEY=VALUE`")
		fset.StringVarP(&a.driver, "driver", "d", "local", "the volume's `DRIVER` (only local)")
		fset.StringArrayVarP(&a.opts, "opt", "o", nil, "driver options (none are supported)")
	case "ls":
		fset.BoolVarP(&a.quiet, "quiet", "q", false, "print only the names")
		fset.StringArrayVarP(&a.filters, "filter", "f", nil, "keep volumes that match `KEY=VALUE` (dangling, name, label, driver)")
		fset.StringVar(&a.format, "format", "", "print each through the Go `TEMPLATE` (.Name, .Driver, .Mountpoint, .Labels, .Scope), or json")
	case "inspect":
		fset.StringVarP(&a.format, "format", "f", "", "print each through the Go `TEMPLATE`")
	case "rm":
		fset.BoolVarP(&a.force, "force", "f", false, "no error for a volume that does not exist")
	case "prune":
		fset.BoolVarP(&a.force, "force", "f", false, "do not ask")
		fset.BoolVarP(&a.all, "all", "a", false, "remove every unused volume, not only anonymous ones")
		fset.StringArrayVar(&a.filters, "filter", nil, "accepted for label=KEY[=VALUE]")
	}
	return fset, a
}

// volumeSub makes the subcommand name of volume.
func volumeSub(name, usage, help string, run func(cmd *command, a *volumeArgs, pos []string) int) *command {
	return &command{
		name: "volume " + name, usage: usage, help: help,
		options: optionsOf(func() (*pflag.FlagSet, *volumeArgs) { return volumeSubFlags(name) }),
		run: func(cmd *command, args []string) int {
			fset, a := volumeSubFlags(name)
			pos, code, ok := parseFlags(cmd, fset, args)
			if !ok {
				return code
			}
			return run(cmd, a, pos)
		},
	}
}

var volumeCreateCmd = volumeSub("create", "unionfuse volume create [--label K=V] [NAME]",
	`Create a volume and print its name; without NAME one is made up (64 hex
digits). Creating a volume that exists is no error, as docker.`,
	func(cmd *command, a *volumeArgs, pos []string) int {
		if len(pos) > 1 {
			return usageError(cmd, "want at most one NAME")
		}
		if a.driver != "local" {
			return fail(fmt.Errorf("create volume: driver %q not found: only local is supported", a.driver))
		}
		if len(a.opts) > 0 {
			return fail(fmt.Errorf("create volume: the local driver takes no options here (%s)", strings.Join(a.opts, ",")))
		}
		name := ""
		if len(pos) == 1 {
			name = pos[0]
		} else {
			b := make([]byte, 32)
			rand.Read(b)
			name = hex.EncodeToString(b)
		}
		if !runner.ValidVolumeName(name) {
			return fail(fmt.Errorf("create %s: %q includes invalid characters for a local volume name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name, name))
		}
		labels := map[string]string{}
		for _, l := range a.labels {
			k, v, _ := strings.Cut(l, "=")
			labels[k] = v
		}
		return a.withStore(func(s *cowcache.Store) int {
			if _, _, err := s.CreateVolume(name, labels); err != nil {
				return fail(err)
			}
			fmt.Println(name)
			return exitOK
		})
	})

// withStore opens the store and calls fn with it.
func (a *volumeArgs) withStore(fn func(s *cowcache.Store) int) int {
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	return fn(s)
}

// volumeInspect is docker's volume inspect object.
type volumeInspect struct {
	CreatedAt  string
	Driver     string
	Labels     map[string]string
	Mountpoint string
	Name       string
	Options    map[string]string
	Scope      string
}

func inspectVolume(v cowcache.Volume) volumeInspect {
	return volumeInspect{CreatedAt: v.CreatedAt.Local().Format(time.RFC3339), Driver: "local", Labels: v.Labels,
		Mountpoint: v.Mountpoint, Name: v.Name, Options: v.Options, Scope: "local"}
}

var volumeInspectCmd = volumeSub("inspect", "unionfuse volume inspect [-f FORMAT] VOLUME...",
	`Print a JSON array describing each volume, as docker volume inspect; with
-f, the Go template FORMAT run on each instead ({{.Mountpoint}}).`,
	func(cmd *command, a *volumeArgs, pos []string) int {
		if len(pos) == 0 {
			return usageError(cmd, "want at least one VOLUME")
		}
		var out *format.Writer
		if a.format != "" {
			w, err := format.New(os.Stdout, a.format, nil)
			if err != nil {
				return usageError(cmd, "%v", err)
			}
			out = w
		}
		return a.withStore(func(s *cowcache.Store) int {
			status := exitOK
			found := []volumeInspect{}
			for _, name := range pos {
				v, err := s.Volume(name)
				if err != nil {
					fmt.Fprintf(os.Stderr, "unionfuse %s: get %s: no such volume\n", cmd.name, name)
					status = exitFail
					continue
				}
				found = append(found, inspectVolume(v))
			}
			if out != nil {
				if code := printRows(out, found); code != exitOK {
					return code
				}
				return status
			}
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "    ")
			enc.Encode(found)
			return status
		})
	})

// volumeRow is a line of volume ls, as its --format sees it.
type volumeRow struct {
	Driver, Name, Mountpoint, Scope, Labels, CreatedAt string
}

var volumeHeader = map[string]string{"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE", "Labels": "LABELS", "CreatedAt": "CREATED"}

var volumeLsCmd = volumeSub("ls", "unionfuse volume ls [-q] [--filter KEY=VALUE] [--format FORMAT]",
	`List the volumes: DRIVER and VOLUME NAME, as docker volume ls. --filter
takes dangling=true|false (no container uses it), name=PART, label=KEY or
label=KEY=VALUE and driver=local; given several times, every key must
match and the values of one key are alternatives.`,
	func(cmd *command, a *volumeArgs, pos []string) int {
		if len(pos) > 0 {
			return usageError(cmd, "unexpected argument %q", pos[0])
		}
		filter, err := parseVolumeFilter(a.filters)
		if err != nil {
			return usageError(cmd, "%v", err)
		}
		var out *format.Writer
		if !format.IsDefault(a.format) {
			if out, err = format.New(os.Stdout, a.format, volumeHeader); err != nil {
				return usageError(cmd, "%v", err)
			}
		}
		return a.withStore(func(s *cowcache.Store) int {
			r := runner.New(s)
			vols, err := s.Volumes()
			if err != nil {
				return fail(err)
			}
			used, err := r.VolumeUsers()
			if err != nil {
				return fail(err)
			}
			var rows []volumeRow
			for _, v := range vols {
				if filter.match(v, len(used[v.Name]) > 0) {
					rows = append(rows, volumeRow{Driver: "local", Name: v.Name, Mountpoint: v.Mountpoint, Scope: "local",
						Labels: labelString(v.Labels), CreatedAt: v.CreatedAt.Local().Format(time.RFC3339)})
				}
			}
			switch {
			case a.quiet:
				for _, row := range rows {
					fmt.Println(row.Name)
				}
			case out != nil:
				return printRows(out, rows)
			default:
				tw := newTable()
				fmt.Fprintln(tw, "DRIVER\tVOLUME NAME")
				for _, row := range rows {
					fmt.Fprintf(tw, "%s\t%s\n", row.Driver, row.Name)
				}
				tw.Flush()
			}
			return exitOK
		})
	})

var volumeRmCmd = volumeSub("rm", "unionfuse volume rm [-f] VOLUME...",
	`Remove volumes and what they hold, printing each name. A volume a
container uses (running or not) is refused, as docker: remove the
container first. -f makes a missing volume no error.`,
	func(cmd *command, a *volumeArgs, pos []string) int {
		if len(pos) == 0 {
			return usageError(cmd, "want at least one VOLUME")
		}
		return a.withStore(func(s *cowcache.Store) int {
			r := runner.New(s)
			status := exitOK
			for _, name := range pos {
				if err := r.RemoveVolume(name, a.force); err != nil {
					fmt.Fprintf(os.Stderr, "unionfuse %s: %v\n", cmd.name, err)
					status = exitFail
					continue
				}
				fmt.Println(name)
			}
			return status
		})
	})

var volumePruneCmd = volumeSub("prune", "unionfuse volume prune [-a] [-f]",
	`Remove the anonymous volumes no container uses (with -a every unused
volume), as docker 23 and later. Asks first unless -f.`,
	func(cmd *command, a *volumeArgs, pos []string) int {
		if len(pos) > 0 {
			return usageError(cmd, "unexpected argument %q", pos[0])
		}
		what := "all anonymous local volumes not used by at least one container"
		if a.all {
			what = "all local volumes not used by at least one container"
		}
		if !a.force && !confirm("WARNING! This will remove "+what+".\nAre you sure you want to continue? [y/N] ") {
			return exitOK
		}
		return a.withStore(func(s *cowcache.Store) int {
			names, freed, err := runner.New(s).PruneVolumes(a.all)
			printDeleted("Volumes", names)
			if err != nil {
				return fail(err)
			}
			fmt.Printf("Total reclaimed space: %s\n", sizeString(freed))
			return exitOK
		})
	})

// labelString is docker's LABELS column: k=v,k2=v2.
func labelString(labels map[string]string) string {
	var out []string
	for k, v := range labels {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}
