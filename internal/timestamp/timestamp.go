// Package timestamp reads the times docker's --since and --until take
// (logs, events): an RFC 3339 date or time, with or without its zone, a
// Unix timestamp (seconds, optionally .nanoseconds), or a duration (10m,
// 1h30m) meaning that long before now. It follows the rules of docker's
// own parser (its client's timestamp.GetTimestamp), which is internal to
// docker's client and cannot be imported.
package timestamp

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The layouts docker tries, by what the value contains.
const (
	rfc3339Local     = "2006-01-02T15:04:05"
	rfc3339NanoLocal = "2006-01-02T15:04:05.999999999"
	dateWithZone     = "2006-01-02Z07:00"
	dateLocal        = "2006-01-02"
)

// Parse reads value as docker's --since/--until do: a duration is taken
// back from now; a date or time without a zone is local time.
func Parse(value string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(value); value != "0" && err == nil {
		return now.Add(-d), nil
	}
	local := !(strings.ContainsAny(value, "zZ+") || strings.Count(value, "-") == 3)
	var layout string
	switch {
	case strings.Contains(value, ".") && local:
		layout = rfc3339NanoLocal
	case strings.Contains(value, "."):
		layout = time.RFC3339Nano
	case strings.Contains(value, "T"):
		colons := strings.Count(value, ":")
		if !local && !strings.ContainsAny(value, "zZ") && colons > 0 {
			colons-- // the one of the zone's offset
		}
		layouts := []string{"2006-01-02T15Z07:00", "2006-01-02T15:04Z07:00", time.RFC3339}
		if local {
			layouts = []string{"2006-01-02T15", "2006-01-02T15:04", rfc3339Local}
		}
		layout = layouts[min(colons, 2)]
	case local:
		layout = dateLocal
	default:
		layout = dateWithZone
	}
	var t time.Time
	var err error
	if local {
		t, err = time.ParseInLocation(layout, value, time.Local)
	} else {
		t, err = time.Parse(layout, value)
	}
	if err == nil {
		return t, nil
	}
	if strings.Contains(value, "-") {
		return time.Time{}, fmt.Errorf("invalid time %q: %w", value, err)
	}
	return unix(value)
}

// unix reads SECONDS[.NANOSECONDS].
func unix(value string) (time.Time, error) {
	secs, frac, _ := strings.Cut(value, ".")
	s, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("failed to parse value as time or duration: %q", value)
	}
	var ns int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		ns, err = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("failed to parse value as time or duration: %q", value)
		}
	}
	return time.Unix(s, ns), nil
}
