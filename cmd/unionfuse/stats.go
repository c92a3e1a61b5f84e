package main

import (
	"fmt"
	"os"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/internal/format"
	"github.com/unionfuse/unionfuse/runner"
)

var statsCmd = &command{
	name:  "stats",
	usage: "unionfuse stats [OPTIONS] [CONTAINER...]",
	help: `Show what containers use: CPU, memory against its limit, network and
block I/O and processes, from their cgroups (from /proc for a container
run without one). Without CONTAINER, the running containers (-a: all).
The table is refreshed every second until interrupted; --no-stream
prints it once (the CPU % measured over one second).`,
	options: optionsOf(statsFlags),
	run:     runStats,
}

// statsArgs are the flags of stats.
type statsArgs struct {
	containerArgs
	all, noStream, noTrunc bool
	format                 string
}

func statsFlags() (*pflag.FlagSet, *statsArgs) {
	a := &statsArgs{}
	fset := newContainerFlags("stats", &a.containerArgs)
	fset.BoolVarP(&a.all, "all", "a", false, "show all containers (default: the running ones)")
	fset.BoolVar(&a.noStream, "no-stream", false, "print the figures once")
	fset.BoolVar(&a.noTrunc, "no-trunc", false, "do not truncate the container ids")
	fset.StringVar(&a.format, "format", "", "print each container through the Go `TEMPLATE` (table ..., json)")
	return fset, a
}

// statsRow is one container in stats, docker's fields.
type statsRow struct {
	Container, ID, Name                              string
	CPUPerc, MemUsage, MemPerc, NetIO, BlockIO, PIDs string
}

// statsHeader is the header of a stats table, by field.
var statsHeader = map[string]string{"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
	"MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}

// statsTable is docker's default stats format.
const statsTable = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"

func runStats(cmd *command, args []string) int {
	fset, a := statsFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	tmpl := a.format
	if format.IsDefault(tmpl) {
		tmpl = statsTable
	}
	if _, err := format.New(os.Stdout, tmpl, statsHeader); err != nil {
		return usageError(cmd, "%v", err)
	}
	return a.withRunner(func(r *runner.Runner) int {
		prev := map[string]runner.Stats{}
		sample := func(cs []*runner.Container) {
			for _, c := range cs {
				if st, err := r.Stats(c); err == nil {
					prev[c.ID] = st
				}
			}
		}
		cs, err := a.containers(r, pos)
		if err != nil {
			return fail(err)
		}
		sample(cs)
		for {
			time.Sleep(time.Second)
			if !a.noStream {
				// Containers come and go while the table streams.
				if cs, err = a.containers(r, pos); err != nil {
					return fail(err)
				}
				fmt.Print("\033[2J\033[H")
			}
			out, _ := format.New(os.Stdout, tmpl, statsHeader)
			for i, c := range cs {
				st, err := r.Stats(c)
				if err != nil {
					return fail(err)
				}
				if err := out.Write(a.row(c, pos, i, prev[c.ID], st)); err != nil {
					return fail(err)
				}
				prev[c.ID] = st
			}
			if err := out.Flush(); err != nil {
				return fail(err)
			}
			if a.noStream {
				return exitOK
			}
		}
	})
}

// containers are the containers stats shows: those named, else the
// running ones (all with -a).
func (a *statsArgs) containers(r *runner.Runner, refs []string) ([]*runner.Container, error) {
	if len(refs) > 0 {
		var out []*runner.Container
		for _, ref := range refs {
			c, err := r.Get(ref)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, nil
	}
	all, err := r.List()
	if err != nil {
		return nil, err
	}
	var out []*runner.Container
	for _, c := range all {
		if a.all || c.Running() {
			out = append(out, c)
		}
	}
	return out, nil
}

// row is container c's line from two readings, as docker formats it.
func (a *statsArgs) row(c *runner.Container, refs []string, i int, before, now runner.Stats) statsRow {
	id := c.ID
	if !a.noTrunc {
		id = c.ShortID()
	}
	row := statsRow{Container: id, ID: id, Name: c.Name}
	if i < len(refs) {
		row.Container = refs[i]
	}
	cpu := 0.0
	if wall := now.Read.Sub(before.Read); wall > 0 && now.CPU >= before.CPU && !before.Read.IsZero() {
		cpu = float64(now.CPU-before.CPU) / float64(wall) * 100
	}
	mem := 0.0
	if now.MemoryLimit > 0 {
		mem = float64(now.MemoryUsage) / float64(now.MemoryLimit) * 100
	}
	row.CPUPerc = fmt.Sprintf("%.2f%%", cpu)
	row.MemPerc = fmt.Sprintf("%.2f%%", mem)
	if !c.Running() {
		row.CPUPerc, row.MemPerc = "0.00%", "0.00%"
	}
	row.MemUsage = units.BytesSize(float64(now.MemoryUsage)) + " / " + units.BytesSize(float64(now.MemoryLimit))
	row.NetIO = units.HumanSizeWithPrecision(float64(now.NetRx), 3) + " / " + units.HumanSizeWithPrecision(float64(now.NetTx), 3)
	row.BlockIO = units.HumanSizeWithPrecision(float64(now.BlockRead), 3) + " / " + units.HumanSizeWithPrecision(float64(now.BlockWrite), 3)
	row.PIDs = fmt.Sprint(now.Pids)
	return row
}
