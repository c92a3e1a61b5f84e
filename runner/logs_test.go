package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLogs writes a log through the tee of a run and reads it back with
// the options of docker logs, after a log of the old format.
func TestLogs(t *testing.T) {
	c := &Container{dir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(c.dir, oldLogName), []byte("old1\nold2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := openLog(c)
	if err != nil {
		t.Fatal(err)
	}
	stdio, flush := l.tee(IO{})
	stdio.Stdout.Write([]byte("a\nb"))
	stdio.Stderr.Write([]byte("e1\n"))
	stdio.Stdout.Write([]byte("c\n"))
	stdio.Stdout.Write([]byte("no newline"))
	flush()
	l.close()
	read := func(o LogOptions) (string, string) {
		var out, errs strings.Builder
		if err := (&Runner{}).Logs(c, &out, &errs, o); err != nil {
			t.Fatal(err)
		}
		return out.String(), errs.String()
	}
	for _, tc := range []struct {
		name       string
		o          LogOptions
		out, stder string
	}{
		{"all", LogOptions{Tail: -1}, "old1\nold2\na\nbc\nno newline", "e1\n"},
		{"tail 2", LogOptions{Tail: 2}, "bc\nno newline", ""},
		{"tail 0", LogOptions{Tail: 0}, "", ""},
		{"since", LogOptions{Tail: -1, Since: time.Now().Add(-time.Hour)}, "a\nbc\nno newline", "e1\n"},
		{"until", LogOptions{Tail: -1, Until: time.Now().Add(-time.Hour)}, "old1\nold2\n", ""},
	} {
		out, errs := read(tc.o)
		if out != tc.out || errs != tc.stder {
			t.Errorf("%s: stdout %q stderr %q, want %q %q", tc.name, out, errs, tc.out, tc.stder)
		}
	}
	out, _ := read(LogOptions{Tail: 1, Timestamps: true})
	if _, err := time.Parse(TimestampLayout, strings.Fields(out)[0]); err != nil {
		t.Errorf("-t: %q: %v", out, err)
	}
}
