package runner

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The container's log is kept as docker's json-file driver keeps it: one
// JSON object a line, {"log":"<the line, with its newline>","stream":
// "stdout"|"stderr","time":"<RFC 3339, nanoseconds>"}. Logs of earlier
// versions (container.log: both streams, raw, no times) are still read,
// before it (logs.go).
const (
	logName    = "container-json.log"
	oldLogName = "container.log"
)

// maxLogLine is where a line without its newline yet is cut into an
// entry of its own (docker's 16 KiB).
const maxLogLine = 16 << 10

// logEntry is one line of the log.
type logEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// The streams, as docker names them.
const (
	streamStdout = "stdout"
	streamStderr = "stderr"
)

// LogPath returns the container's log (json-file format).
func (c *Container) LogPath() string { return filepath.Join(c.dir, logName) }

// oldLogPath returns the log of earlier versions.
func (c *Container) oldLogPath() string { return filepath.Join(c.dir, oldLogName) }

// logWriter appends entries to a container's log.
type logWriter struct {
	mu     sync.Mutex
	f      *os.File
	closed bool
}

// openLog opens c's log for appending; nil (no log) for a transient
// container (a build step's, whose output its builder shows).
func openLog(c *Container) (*logWriter, error) {
	if c.Config.Transient {
		return nil, nil
	}
	f, err := os.OpenFile(c.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	return &logWriter{f: f}, nil
}

// write appends one entry.
func (l *logWriter) write(stream string, line []byte, t time.Time) {
	b, err := json.Marshal(logEntry{Log: string(line), Stream: stream, Time: t.UTC()})
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.f.Write(append(b, '\n'))
	}
}

// close ends the log; later writes are dropped.
func (l *logWriter) close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.f.Close()
}

// logStream is one stream of a logWriter, cut into lines.
type logStream struct {
	mu      sync.Mutex // a terminal's relay may outlive the command
	l       *logWriter
	name    string
	partial []byte // the start of a line whose newline has not come yet
}

// Write logs each complete line of p; the rest waits for its newline (or
// for flush).
func (s *logStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.partial = append(s.partial, p...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		s.l.write(s.name, s.partial[:i+1], now)
		s.partial = s.partial[i+1:]
	}
	if len(s.partial) >= maxLogLine {
		s.l.write(s.name, s.partial, now)
		s.partial = nil
	}
	if len(s.partial) == 0 {
		s.partial = nil
	}
	return len(p), nil
}

// flush logs what is left of a line without its newline.
func (s *logStream) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.partial) > 0 {
		s.l.write(s.name, s.partial, time.Now())
		s.partial = nil
	}
}

// teeWriter writes to the log and then to the caller's writer: a failed
// write to the caller's (a closed pipe) is the command's to see.
type teeWriter struct {
	log *logStream
	w   io.Writer
}

func (t teeWriter) Write(p []byte) (int, error) {
	t.log.Write(p)
	if t.w == nil {
		return len(p), nil
	}
	return t.w.Write(p)
}

// tee returns stdio with its Stdout and Stderr also written to the log,
// and the function that logs what is left of their last lines (call it
// once the command's output has been copied).
func (l *logWriter) tee(stdio IO) (IO, func()) {
	if l == nil {
		return stdio, func() {}
	}
	out := &logStream{l: l, name: streamStdout}
	errs := &logStream{l: l, name: streamStderr}
	stdio.Stdout = teeWriter{log: out, w: stdio.Stdout}
	stdio.Stderr = teeWriter{log: errs, w: stdio.Stderr}
	return stdio, func() { out.flush(); errs.flush() }
}
