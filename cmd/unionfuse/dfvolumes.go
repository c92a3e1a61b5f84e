package main

import (
	"fmt"
	"slices"

	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/runner"
)

// volumeUsage is one volume in system df -v: its size and how many
// containers mount it.
type volumeUsage struct {
	Name  string
	Links int
	Size  int64
}

// volumesUsage measures the volumes: system df's "Local Volumes" row (a
// volume is active while a container names it; the others are
// reclaimable) and each volume for -v.
func volumesUsage(r *runner.Runner) (dfRow, []volumeUsage, error) {
	vols, err := r.Store().Volumes()
	if err != nil {
		return dfRow{}, nil, err
	}
	users, err := r.VolumeUsers()
	if err != nil {
		return dfRow{}, nil, err
	}
	row := dfRow{Type: "Local Volumes", TotalCount: len(vols)}
	var total, reclaimable int64
	var list []volumeUsage
	for _, v := range vols {
		n, _ := cowcache.DirSize(v.Mountpoint)
		total += n
		if len(users[v.Name]) > 0 {
			row.Active++
		} else {
			reclaimable += n
		}
		list = append(list, volumeUsage{v.Name, len(users[v.Name]), n})
	}
	row.Size, row.Reclaimable = sizeString(total), percentOf(reclaimable, total)
	return row, list, nil
}

// withVolumesRow puts the volumes' row where docker has it: after
// Images and Containers.
func withVolumesRow(rows []dfRow, row dfRow) []dfRow {
	return slices.Insert(rows, min(2, len(rows)), row)
}

// printDFVolumes is the volumes' part of system df -v.
func printDFVolumes(list []volumeUsage) {
	fmt.Println("\nLocal Volumes space usage:")
	tw := newTable()
	fmt.Fprintln(tw, "VOLUME NAME\tLINKS\tSIZE")
	for _, v := range list {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", v.Name, v.Links, sizeString(v.Size))
	}
	tw.Flush()
}
