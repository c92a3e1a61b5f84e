package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/runner"
)

// This file holds the prune commands of docker's management groups
// (container prune, image prune; volume prune is in volume.go) and what
// they share with system prune.

// confirm prints question and reports whether the answer on stdin is
// yes, as docker's prune prompts.
func confirm(question string) bool {
	fmt.Print(question)
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if a := strings.TrimSpace(strings.ToLower(line)); a != "y" && a != "yes" {
		fmt.Println()
		return false
	}
	return true
}

// printDeleted prints docker's "Deleted KIND:" section, nothing for none.
func printDeleted(kind string, ids []string) {
	if len(ids) > 0 {
		fmt.Printf("Deleted %s:\n%s\n\n", kind, strings.Join(ids, "\n"))
	}
}

// pruneContainers removes every container that does not run and returns
// their ids, the bytes freed and the exit status (exitFail when one could
// not be removed; it is named on stderr).
func pruneContainers(r *runner.Runner) ([]string, int64, int) {
	all, err := r.List()
	if err != nil {
		return nil, 0, fail(err)
	}
	status := exitOK
	var deleted []string
	var reclaimed int64
	for _, c := range all {
		if r.Reload(c) != nil || c.Running() {
			continue // gone, or started since List
		}
		size, _ := cowcache.DirSize(c.UpperDir())
		if err := r.Remove(c, false); err != nil {
			warn(err)
			status = exitFail
			continue
		}
		deleted = append(deleted, c.ID)
		reclaimed += size
	}
	return deleted, reclaimed, status
}

// pruneArgs are the flags of container prune and image prune.
type pruneArgs struct {
	storeFlags
	force, all bool
	filters    []string
}

func pruneFlags(name string, all bool) func() (*pflag.FlagSet, *pruneArgs) {
	return func() (*pflag.FlagSet, *pruneArgs) {
		a := &pruneArgs{}
		fset := pflag.NewFlagSet(name, pflag.ContinueOnError)
		a.add(fset)
		fset.BoolVarP(&a.force, "force", "f", false, "do not ask")
		if all {
			fset.BoolVarP(&a.all, "all", "a", false, "remove every image no container uses, not only dangling ones")
		}
		return fset, a
	}
}

var containerPruneCmd = &command{
	name:    "container prune",
	usage:   "unionfuse container prune [-f]",
	help:    "Remove every container that does not run, as docker container prune. Asks first unless -f.",
	options: optionsOf(pruneFlags("container prune", false)),
	run: func(cmd *command, args []string) int {
		fset, a := pruneFlags(cmd.name, false)()
		pos, code, ok := parseFlags(cmd, fset, args)
		if !ok {
			return code
		}
		if len(pos) > 0 {
			return usageError(cmd, "unexpected argument %q", pos[0])
		}
		if !a.force && !confirm("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ") {
			return exitOK
		}
		s, err := a.open()
		if err != nil {
			return fail(err)
		}
		defer s.Close()
		deleted, reclaimed, status := pruneContainers(runner.New(s))
		printDeleted("Containers", deleted)
		fmt.Printf("Total reclaimed space: %s\n", sizeString(reclaimed))
		return status
	},
}

var imagePruneCmd = &command{
	name:  "image prune",
	usage: "unionfuse image prune [-a] [-f]",
	help: `Remove dangling images (no name, no container, no child) and every layer
and blob nobody uses; with -a every image no container uses. Asks first
unless -f.`,
	options: optionsOf(pruneFlags("image prune", true)),
	run: func(cmd *command, args []string) int {
		fset, a := pruneFlags(cmd.name, true)()
		pos, code, ok := parseFlags(cmd, fset, args)
		if !ok {
			return code
		}
		if len(pos) > 0 {
			return usageError(cmd, "unexpected argument %q", pos[0])
		}
		what := "all dangling images"
		if a.all {
			what = "all images without at least one container associated to them"
		}
		if !a.force && !confirm("WARNING! This will remove "+what+".\nAre you sure you want to continue? [y/N] ") {
			return exitOK
		}
		s, err := a.open()
		if err != nil {
			return fail(err)
		}
		defer s.Close()
		removed, err := pruneImages(s, a.all)
		if err != nil {
			return fail(err)
		}
		fmt.Printf("Total reclaimed space: %s\n", sizeString(removed.Reclaimed))
		return exitOK
	},
}

// pruneImages removes the dangling images (with all, every image no
// container uses) and every layer and blob nobody uses, and prints
// docker's "Deleted Images:" section.
func pruneImages(s *cowcache.Store, all bool) (cowcache.Removed, error) {
	var removed cowcache.Removed
	if all {
		var err error
		if removed, err = removeUnusedImages(s); err != nil {
			return removed, err
		}
	}
	pruned, err := s.Prune()
	if err != nil {
		return removed, err
	}
	addRemoved(&removed, pruned)
	if len(removed.Images)+len(removed.Layers) > 0 {
		fmt.Println("Deleted Images:")
		printRemoved(removed)
		fmt.Println()
	}
	return removed, nil
}
