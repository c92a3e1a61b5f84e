package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/unionfuse/unionfuse/cowcache"
)

// This file holds how the commands print what they share: tables, sizes,
// times and ids, as docker prints them.

// newTable returns a tabwriter laid out as docker's tables.
func newTable() *tabwriter.Writer { return tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0) }

// sizeString formats bytes as docker does: three significant digits,
// decimal units, no space ("4.74kB", "64.2MB", "0B").
func sizeString(n int64) string {
	v, prefix := humanize.ComputeSI(float64(n))
	return fmt.Sprintf("%.3g%sB", v, prefix)
}

// since formats a creation time as docker's CREATED column.
func since(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	if d := time.Since(t); d < time.Second && d > -time.Second {
		return "Less than a second ago" // humanize says "now"
	}
	return humanize.Time(t)
}

// imageID formats an image id: 12 hex digits, or in full with --no-trunc.
func imageID(d cowcache.Digest, noTrunc bool) string {
	if noTrunc {
		return d.String()
	}
	return d.Short()
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
