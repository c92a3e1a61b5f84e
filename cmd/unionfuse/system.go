package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/internal/format"
	"github.com/unionfuse/unionfuse/runner"
)

var systemCmd = &command{
	name:  "system",
	usage: "unionfuse system df [-v] [--format FORMAT] | prune [-a] [-f] [--volumes]",
	help: `Manage the layer store as a whole.

  system df [-v]   show disk use, as docker system df: images (their layers,
                   each counted once), containers (their writable layers),
                   the build cache and the kept image archives (layer
                   tarballs, manifests, configs). RECLAIMABLE is what
                   removing everything no container uses would free.
                   -v lists every image (SIZE, SHARED SIZE, UNIQUE SIZE),
                   container, volume and layer. A container is active while it runs.
                   --format takes a Go template (see docs/run.md) with the
                   fields Type, TotalCount, Active, Size and Reclaimable;
                   "table ..." prints a header, json one object per line.
  system prune     remove stopped containers, dangling images (no name, no
                   container, no child), every layer and blob nobody uses,
                   and the debris of interrupted commands. With -a, every
                   image no container uses goes too. --volumes removes the
                   anonymous volumes no container uses (as docker 23).
                   Asks first unless -f.`,
	options: optionsOf(systemFlags),
	run:     runSystem,
}

type systemArgs struct {
	storeFlags
	verbose, force, all, volumes bool
	format                       string
}

func systemFlags() (*pflag.FlagSet, *systemArgs) {
	a := &systemArgs{}
	fset := pflag.NewFlagSet("system", pflag.ContinueOnError)
	a.add(fset)
	fset.BoolVarP(&a.verbose, "verbose", "v", false, "df: list images, containers and layers")
	fset.BoolVarP(&a.force, "force", "f", false, "prune: do not ask")
	fset.BoolVarP(&a.all, "all", "a", false, "prune: remove every image no container uses, not only dangling ones")
	fset.BoolVar(&a.volumes, "volumes", false, "prune: also the anonymous volumes no container uses")
	fset.StringVar(&a.format, "format", "", "df: print each line through the Go `TEMPLATE`, or json")
	return fset, a
}

func runSystem(cmd *command, args []string) int {
	fset, a := systemFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 1 || (pos[0] != "df" && pos[0] != "prune") {
		return usageError(cmd, "want df or prune")
	}
	var out *format.Writer
	if !format.IsDefault(a.format) {
		var err error
		if out, err = format.New(os.Stdout, a.format, dfHeader); err != nil {
			return usageError(cmd, "%v", err)
		}
	}
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	r := runner.New(s)
	if pos[0] == "prune" {
		return systemPrune(r, a)
	}
	u, err := s.DiskUsage()
	if err != nil {
		return fail(err)
	}
	containers, err := r.List()
	if err != nil {
		return fail(err)
	}
	vrow, vols, err := volumesUsage(r)
	if err != nil {
		return fail(err)
	}
	rows := withVolumesRow(dfRows(u, runningIDs(containers)), vrow)
	if out != nil {
		return printRows(out, rows)
	}
	tw := newTable()
	fmt.Fprintln(tw, "TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE")
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", row.Type, row.TotalCount, row.Active, row.Size, row.Reclaimable)
	}
	tw.Flush()
	if a.verbose {
		printDFVerbose(u)
		printDFVolumes(vols)
	}
	return exitOK
}

// percentOf formats "N (P%)" as docker's RECLAIMABLE column.
func percentOf(part, total int64) string {
	if total == 0 {
		return sizeString(part)
	}
	return fmt.Sprintf("%s (%d%%)", sizeString(part), part*100/total)
}

// runningIDs is the set of the ids of the containers that run.
func runningIDs(cs []*runner.Container) map[string]bool {
	ids := map[string]bool{}
	for _, c := range cs {
		if c.Running() {
			ids[c.ID] = true
		}
	}
	return ids
}

// dfRow is one line of system df, as its --format sees it (docker's
// names).
type dfRow struct {
	Type               string
	TotalCount, Active int
	Size, Reclaimable  string
}

// dfHeader is the header of a system df table, by field.
var dfHeader = map[string]string{"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}

// dfRows are the lines of docker system df's table. A container is
// active while it runs (running holds their ids); the others are
// reclaimable.
func dfRows(u *cowcache.Usage, running map[string]bool) []dfRow {
	active := 0
	for _, img := range u.Images {
		if img.Containers > 0 {
			active++
		}
	}
	var cSize, cReclaimable int64
	for _, c := range u.Containers {
		cSize += c.Size
		if !running[c.ID] {
			cReclaimable += c.Size
		}
	}

	return []dfRow{
		{"Images", len(u.Images), active, sizeString(u.ImagesSize), percentOf(u.ImagesReclaimable, u.ImagesSize)},
		{"Containers", len(u.Containers), len(running), sizeString(cSize), percentOf(cReclaimable, cSize)},
		{"Dangling layers", len(u.Layers) - usedLayers(u), 0, sizeString(u.DanglingLayersSize), percentOf(u.DanglingLayersSize, u.DanglingLayersSize)},
		{"Image archives", len(u.Images), len(u.Images), sizeString(u.BlobsSize), sizeString(0)},
		{"Build Cache", 0, 0, sizeString(u.CacheSize), sizeString(u.CacheSize)},
	}
}

// usedLayers counts the layers some image uses.
func usedLayers(u *cowcache.Usage) int {
	used := map[cowcache.Digest]bool{}
	for _, img := range u.Images {
		for _, l := range img.Layers {
			used[l] = true
		}
	}
	return len(used)
}

func printDFVerbose(u *cowcache.Usage) {
	fmt.Println("\nImages space usage:")
	tw := newTable()
	fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS")
	for _, img := range u.Images {
		names := img.Names
		if len(names) == 0 {
			names = []string{"<none>:<none>"}
		}
		for _, n := range names {
			repo, tag := cowcache.SplitName(n)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", repo, tag, img.ID.Short(), since(img.Created),
				sizeString(img.Size), sizeString(img.SharedSize), sizeString(img.UniqueSize), img.Containers)
		}
	}
	tw.Flush()
	fmt.Println("\nContainers space usage:")
	tw = newTable()
	fmt.Fprintln(tw, "CONTAINER ID\tIMAGE\tSIZE\tVIRTUAL SIZE")
	for _, c := range u.Containers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.ID, c.Image.Short(), sizeString(c.Size), sizeString(c.VirtualSize))
	}
	tw.Flush()
	users := map[cowcache.Digest]int{}
	for _, img := range u.Images {
		for _, l := range img.Layers {
			users[l]++
		}
	}
	fmt.Println("\nLayers space usage:")
	tw = newTable()
	fmt.Fprintln(tw, "LAYER ID\tPARENT\tSIZE\tIMAGES")
	for _, l := range u.Layers {
		parent := "<none>"
		if l.Parent != "" {
			parent = l.Parent.Short()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", l.ID.Short(), parent, sizeString(l.Size), users[l.ID])
	}
	tw.Flush()
}

// systemPrune removes the stopped containers, then the images (the
// dangling ones, or with -a every one no container uses), then every
// layer and blob nobody uses, printing what went as docker system prune.
func systemPrune(r *runner.Runner, a *systemArgs) int {
	if !a.force && !confirmPrune(a.all, a.volumes) {
		return exitOK
	}
	deleted, reclaimed, status := pruneContainers(r)
	printDeleted("Containers", deleted)
	if a.volumes {
		names, freed, err := r.PruneVolumes(false)
		printDeleted("Volumes", names)
		if err != nil {
			return fail(err)
		}
		reclaimed += freed
	}
	removed, err := pruneImages(r.Store(), a.all)
	if err != nil {
		return fail(err)
	}
	fmt.Printf("Total reclaimed space: %s\n", sizeString(reclaimed+removed.Reclaimed))
	return status
}

// confirmPrune asks before system prune, as docker, and reports whether
// the answer was yes.
func confirmPrune(all, volumes bool) bool {
	images := "all dangling images"
	if all {
		images = "all images without at least one container associated to them"
	}
	vols := ""
	if volumes {
		vols = "  - all anonymous volumes not used by at least one container\n"
	}
	return confirm(fmt.Sprintf(`WARNING! This will remove:
  - all stopped containers
%s  - %s
  - all layers and image archives no image or container uses
Are you sure you want to continue? [y/N] `, vols, images))
}

// removeUnusedImages removes every image no container uses (nor a mount:
// RemoveImage refuses those, and they are skipped).
func removeUnusedImages(s *cowcache.Store) (cowcache.Removed, error) {
	images, err := s.Images()
	if err != nil {
		return cowcache.Removed{}, err
	}
	var all cowcache.Removed
	for _, img := range images {
		r, err := s.RemoveImage(img.ID.String(), true)
		if err != nil {
			continue // used by a container, mounted, or gone meanwhile
		}
		addRemoved(&all, r)
	}
	return all, nil
}

// addRemoved adds what r reports to sum.
func addRemoved(sum *cowcache.Removed, r cowcache.Removed) {
	sum.Untagged = append(sum.Untagged, r.Untagged...)
	sum.Images = append(sum.Images, r.Images...)
	sum.Layers = append(sum.Layers, r.Layers...)
	sum.Reclaimed += r.Reclaimed
}
