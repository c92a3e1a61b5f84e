package main

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/internal/format"
	"github.com/unionfuse/unionfuse/internal/timestamp"
)

var eventsCmd = &command{
	name:  "events",
	usage: "unionfuse events [--since T] [--until T] [--filter K=V]... [--format FORMAT]",
	help: `Print the store's events (its journal, events.log: containers created,
started, dying, stopped, killed, renamed, restarted, destroyed) from
--since on (default: now), following new ones until interrupted or
until --until. --since and --until
take what logs' do; --filter takes type=, event= (the action), container=
(id or name), image= and label=KEY[=VALUE] (values of one key are
alternatives); --format a Go template over docker's event fields (Type,
Action, Actor.ID, Actor.Attributes, Time, TimeNano) or json.`,
	options: optionsOf(eventsFlags),
	run:     runEvents,
}

type eventsArgs struct {
	storeFlags
	since, until, format string
	filters              []string
}

func eventsFlags() (*pflag.FlagSet, *eventsArgs) {
	a := &eventsArgs{}
	fset := pflag.NewFlagSet("events", pflag.ContinueOnError)
	a.storeFlags.add(fset)
	fset.StringVar(&a.since, "since", "", "print the events since `T`")
	fset.StringVar(&a.until, "until", "", "print the events until `T`, then stop")
	fset.StringArrayVarP(&a.filters, "filter", "f", nil, "print only the events that match `KEY=VALUE`")
	fset.StringVar(&a.format, "format", "", "print each event through the Go `TEMPLATE`, or json")
	return fset, a
}

func runEvents(cmd *command, args []string) int {
	fset, a := eventsFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(cmd, "takes no arguments")
	}
	now := time.Now()
	since, until := now, time.Time{} // without --since: only what happens from now on
	var err error
	if a.since != "" {
		if since, err = timestamp.Parse(a.since, now); err != nil {
			return usageError(cmd, "%v", err)
		}
	}
	if a.until != "" {
		if until, err = timestamp.Parse(a.until, now); err != nil {
			return usageError(cmd, "%v", err)
		}
	}
	filter := map[string][]string{}
	for _, f := range a.filters {
		k, v, ok := strings.Cut(f, "=")
		switch k {
		case "type", "event", "container", "image", "label":
		default:
			ok = false
		}
		if !ok {
			return usageError(cmd, "invalid filter %q (want KEY=VALUE, KEY one of type, event, container, image, label)", f)
		}
		filter[k] = append(filter[k], v)
	}
	var out *format.Writer
	if a.format != "" {
		if out, err = format.New(os.Stdout, a.format, nil); err != nil {
			return usageError(cmd, "%v", err)
		}
	}
	s, err := a.open()
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	ctx, cancel := interruptible()
	defer cancel()
	err = s.ReadEvents(ctx, since, until, a.until == "", func(e cowcache.Event) error {
		if !eventMatches(e, filter) {
			return nil
		}
		if out != nil {
			if err := out.Write(e); err != nil {
				return err
			}
			return out.Flush()
		}
		_, err := fmt.Println(eventLine(e))
		return err
	})
	if err != nil {
		return fail(err)
	}
	return exitOK
}

// eventLine is e as docker events prints it: "TIME TYPE ACTION ID (K=V, ...)".
func eventLine(e cowcache.Event) string {
	var attrs []string
	for _, k := range slices.Sorted(maps.Keys(e.Actor.Attributes)) {
		attrs = append(attrs, k+"="+e.Actor.Attributes[k])
	}
	return fmt.Sprintf("%s %s %s %s (%s)", e.Timestamp().Format("2006-01-02T15:04:05.000000000Z07:00"),
		e.Type, e.Action, e.Actor.ID, strings.Join(attrs, ", "))
}

// eventMatches reports whether e meets every key of filter.
func eventMatches(e cowcache.Event, filter map[string][]string) bool {
	attrs := e.Actor.Attributes
	for k, vs := range filter {
		ok := false
		for _, v := range vs {
			switch k {
			case "type":
				ok = ok || e.Type == v
			case "event":
				ok = ok || e.Action == v
			case "container":
				ok = ok || e.Type == "container" && (strings.HasPrefix(e.Actor.ID, v) || attrs["name"] == v)
			case "image":
				ok = ok || attrs["image"] == v || e.Type == "image" && e.Actor.ID == v
			case "label":
				ok = ok || allLabels([]string{v}, attrs)
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
