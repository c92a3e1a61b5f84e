package main

import (
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"
)

// longWord matches a run of non-blank characters too long to be read in
// an error message: a path deeper than PATH_MAX runs to kilobytes.
var longWord = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\S{241,}`) })

// errorLine is the first line of an error's message, each very long word
// (a path) cut in its middle: its first and last 100 bytes stay.
func errorLine(err error) string {
	first, _, _ := strings.Cut(err.Error(), "\n")
	return longWord().ReplaceAllStringFunc(first, func(w string) string {
		head, tail := w[:100], w[len(w)-100:]
		for !utf8.ValidString(head) {
			head = head[:len(head)-1]
		}
		for !utf8.ValidString(tail) {
			tail = tail[1:]
		}
		return head + "…" + tail
	})
}
