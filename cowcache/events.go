package cowcache

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"time"
)

// eventsFile is the store's journal: an append-only file of Events, one
// JSON object a line, written by the commands that change containers and
// images, read by `unionfuse events`.
const eventsFile = "events.log"

// Event is one entry of the journal, in the JSON of docker's events API
// (with its legacy status, id and from fields).
type Event struct {
	Status   string     `json:"status,omitempty"`
	ID       string     `json:"id,omitempty"`
	From     string     `json:"from,omitempty"`
	Type     string     `json:"Type"`   // container, image, volume, network
	Action   string     `json:"Action"` // create, start, die, stop, destroy, pull, tag...
	Actor    EventActor `json:"Actor"`
	Scope    string     `json:"scope"`
	Time     int64      `json:"time"`
	TimeNano int64      `json:"timeNano"`
}

// EventActor is what an Event is about.
type EventActor struct {
	ID         string
	Attributes map[string]string
}

// Timestamp returns when e happened.
func (e Event) Timestamp() time.Time { return time.Unix(0, e.TimeNano) }

// AppendEvent stamps e with the time now and appends it to the journal
// (one write(2) of a line to a file opened O_APPEND: concurrent writers
// do not interleave). A journal that cannot be written loses the event:
// it never fails what happened.
func (s *Store) AppendEvent(e Event) {
	now := time.Now()
	e.Time, e.TimeNano, e.Scope = now.Unix(), now.UnixNano(), "local"
	if e.Type == "container" {
		e.Status, e.ID, e.From = e.Action, e.Actor.ID, e.Actor.Attributes["image"]
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	f, err := os.OpenFile(s.path(eventsFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	f.Write(append(b, '\n'))
}

// ReadEvents calls fn with each event of the journal from since to until
// (zero: no bound); with follow, it then waits for new ones until ctx is
// done or until passes.
func (s *Store) ReadEvents(ctx context.Context, since, until time.Time, follow bool, fn func(Event) error) error {
	f, err := os.Open(s.path(eventsFile))
	if errors.Is(err, os.ErrNotExist) {
		if f, err = os.OpenFile(s.path(eventsFile), os.O_CREATE|os.O_RDONLY, 0o644); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	defer f.Close()
	var partial []byte
	for {
		rd := bufio.NewReader(io.MultiReader(bytes.NewReader(partial), f))
		partial = nil
		for {
			line, err := rd.ReadBytes('\n')
			if errors.Is(err, io.EOF) {
				partial = line
				break
			}
			if err != nil {
				return err
			}
			var e Event
			if json.Unmarshal(line, &e) != nil {
				continue
			}
			t := e.Timestamp()
			if !since.IsZero() && t.Before(since) {
				continue
			}
			if !until.IsZero() && t.After(until) {
				return nil
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if !follow || (!until.IsZero() && time.Now().After(until)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}
