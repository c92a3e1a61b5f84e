package runner

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"time"
)

// LogOptions select what Logs prints, as docker logs' flags.
type LogOptions struct {
	Follow bool // keep printing what is appended while the container runs
	// Tail is how many of the last lines to print; negative: all.
	Tail int
	// Since and Until, when not zero, keep the lines logged in between
	// (lines of an old-format log have no time: Since drops them).
	Since, Until time.Time
	Timestamps   bool // put each line's time before it
}

// TimestampLayout is how docker logs -t prints a line's time: RFC 3339
// with nanoseconds, always nine digits.
const TimestampLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Logs copies the container's log: what it wrote to stdout to stdout, to
// stderr to stderr (with a terminal everything is stdout). With
// o.Follow it keeps copying what is appended until the container is no
// longer running (or o.Until has passed).
func (r *Runner) Logs(c *Container, stdout, stderr io.Writer, o LogOptions) error {
	entries, err := readOldLog(c.oldLogPath())
	if err != nil {
		return err
	}
	f, err := os.Open(c.LogPath())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var partial []byte
	if f != nil {
		defer f.Close()
		if entries, partial, err = readEntries(bufio.NewReader(f), entries); err != nil {
			return err
		}
	}
	if o.Tail >= 0 && len(entries) > o.Tail {
		entries = entries[len(entries)-o.Tail:]
	}
	p := logPrinter{stdout: stdout, stderr: stderr, o: o}
	if !p.printAll(entries) {
		return nil
	}
	for o.Follow {
		running := r.Reload(c) == nil && c.Running()
		if f == nil {
			// Not started yet: the log is made when it starts.
			if f, err = os.Open(c.LogPath()); err == nil {
				defer f.Close()
			}
		}
		if f != nil {
			rd := bufio.NewReader(io.MultiReader(bytes.NewReader(partial), f))
			if entries, partial, err = readEntries(rd, nil); err != nil {
				return err
			}
			if !p.printAll(entries) {
				return nil
			}
		}
		if !running || (!o.Until.IsZero() && time.Now().After(o.Until)) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// logPrinter prints entries to their streams.
type logPrinter struct {
	stdout, stderr io.Writer
	o              LogOptions
}

// printAll prints entries; false once past Until.
func (p logPrinter) printAll(entries []logEntry) bool {
	for _, e := range entries {
		if !p.print(e) {
			return false
		}
	}
	return true
}

// print prints e if it is in the time range; false once past Until.
func (p logPrinter) print(e logEntry) bool {
	if !p.o.Since.IsZero() && e.Time.Before(p.o.Since) {
		return true
	}
	if !p.o.Until.IsZero() && e.Time.After(p.o.Until) {
		return false
	}
	w := p.stdout
	if e.Stream == streamStderr {
		w = p.stderr
	}
	if p.o.Timestamps && !e.Time.IsZero() {
		io.WriteString(w, e.Time.Format(TimestampLayout)+" ")
	}
	io.WriteString(w, e.Log)
	return true
}

// readEntries reads the complete lines of a json-file log from rd and
// returns them after entries, with what was read of a line still being
// written.
func readEntries(rd *bufio.Reader, entries []logEntry) ([]logEntry, []byte, error) {
	for {
		line, err := rd.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return entries, line, nil
		}
		if err != nil {
			return entries, nil, err
		}
		var e logEntry
		if json.Unmarshal(line, &e) != nil {
			continue // not an entry: the tail of a line cut by a crash
		}
		entries = append(entries, e)
	}
}

// readOldLog reads the log of earlier versions as stdout lines without
// a time; nothing when there is none.
func readOldLog(path string) ([]logEntry, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []logEntry
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n') + 1
		if i == 0 {
			i = len(b)
		}
		out = append(out, logEntry{Log: string(b[:i]), Stream: streamStdout})
		b = b[i:]
	}
	return out, nil
}
