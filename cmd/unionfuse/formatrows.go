package main

import "github.com/unionfuse/unionfuse/internal/format"

// printRows prints rows through out (a --format) and returns the exit
// status.
func printRows[T any](out *format.Writer, rows []T) int {
	for _, r := range rows {
		if err := out.Write(r); err != nil {
			return fail(err)
		}
	}
	if err := out.Flush(); err != nil {
		return fail(err)
	}
	return exitOK
}
