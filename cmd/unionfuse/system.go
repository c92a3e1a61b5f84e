package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
)

var systemCmd = &command{
	name:  "system",
	usage: "unionfuse system df [-v] | prune [-f]",
	help: `Manage the layer store as a whole.

  system df [-v]   show disk use, as docker system df: images (their layers,
                   each counted once), containers (their writable layers),
                   the build cache and the kept image archives (layer
                   tarballs, manifests, configs). RECLAIMABLE is what
                   removing everything no container uses would free.
                   -v lists every image (SIZE, SHARED SIZE, UNIQUE SIZE),
                   container and layer.
  system prune     remove dangling images (no name, no container, no child), every
                   layer and blob nobody uses, and the debris of interrupted
                   commands. Asks first unless -f.`,
	options: optionsOf(systemFlags),
	run:     runSystem,
}

type systemArgs struct {
	storeFlags
	verbose, force bool
}

func systemFlags() (*pflag.FlagSet, *systemArgs) {
	a := &systemArgs{}
	fset := pflag.NewFlagSet("system", pflag.ContinueOnError)
	a.add(fset)
	fset.BoolVarP(&a.verbose, "verbose", "v", false, "df: list images, containers and layers")
	fset.BoolVarP(&a.force, "force", "f", false, "prune: do not ask")
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
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	if pos[0] == "prune" {
		return systemPrune(s, a.force)
	}
	u, err := s.DiskUsage()
	if err != nil {
		return fail(err)
	}
	printDF(u)
	if a.verbose {
		printDFVerbose(u)
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

func printDF(u *cowcache.Usage) {
	active := 0
	for _, img := range u.Images {
		if img.Containers > 0 {
			active++
		}
	}
	var cSize int64
	for _, c := range u.Containers {
		cSize += c.Size
	}
	tw := newTable()
	fmt.Fprintln(tw, "TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE")
	fmt.Fprintf(tw, "Images\t%d\t%d\t%s\t%s\n", len(u.Images), active, sizeString(u.ImagesSize), percentOf(u.ImagesReclaimable, u.ImagesSize))
	fmt.Fprintf(tw, "Containers\t%d\t%d\t%s\t%s\n", len(u.Containers), 0, sizeString(cSize), percentOf(cSize, cSize))
	fmt.Fprintf(tw, "Dangling layers\t%d\t0\t%s\t%s\n", len(u.Layers)-usedLayers(u), sizeString(u.DanglingLayersSize), percentOf(u.DanglingLayersSize, u.DanglingLayersSize))
	fmt.Fprintf(tw, "Image archives\t%d\t%d\t%s\t%s\n", len(u.Images), len(u.Images), sizeString(u.BlobsSize), sizeString(0))
	fmt.Fprintf(tw, "Build Cache\t0\t0\t%s\t%s\n", sizeString(u.CacheSize), sizeString(u.CacheSize))
	tw.Flush()
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

func systemPrune(s *cowcache.Store, force bool) int {
	if !force {
		fmt.Print(`WARNING! This will remove:
  - all dangling images
  - all layers and image archives no image or container uses
Are you sure you want to continue? [y/N] `)
		line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		if a := strings.TrimSpace(strings.ToLower(line)); a != "y" && a != "yes" {
			fmt.Println()
			return exitOK
		}
	}
	r, err := s.Prune()
	if err != nil {
		return fail(err)
	}
	if len(r.Images)+len(r.Layers) > 0 {
		fmt.Println("Deleted Images:")
		printRemoved(r)
		fmt.Println()
	}
	fmt.Printf("Total reclaimed space: %s\n", sizeString(r.Reclaimed))
	return exitOK
}
