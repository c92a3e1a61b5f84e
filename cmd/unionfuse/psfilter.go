package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/unionfuse/unionfuse/runner"
)

// This file holds docker ps's --filter: KEY=VALUE terms, the values of one
// key alternatives (any may match), the keys all to be met.

// psFilter is the parsed --filter terms, by key.
type psFilter map[string][]string

// psFilterKeys are the keys ps --filter takes.
var psFilterKeys = map[string]bool{"id": true, "name": true, "label": true, "status": true,
	"ancestor": true, "exited": true, "before": true, "since": true}

// parsePsFilter parses --filter KEY=VALUE terms.
func parsePsFilter(terms []string) (psFilter, error) {
	f := psFilter{}
	for _, t := range terms {
		k, v, ok := strings.Cut(t, "=")
		if !ok || !psFilterKeys[k] {
			return nil, fmt.Errorf("invalid filter %q (want KEY=VALUE, KEY one of id, name, label, status, ancestor, exited, before, since)", t)
		}
		if k == "exited" {
			if _, err := strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("invalid filter %q: want an exit status", t)
			}
		}
		f[k] = append(f[k], v)
	}
	return f, nil
}

// needsAll reports whether the filter must see stopped containers too
// (docker ps: status=exited, exited=N and the like imply -a).
func (f psFilter) needsAll() bool {
	return len(f["exited"]) > 0 || len(f["status"]) > 0
}

// bounds resolves before= and since= to creation order: the containers
// shown are created strictly between them. all is ps's list, newest
// first.
func (f psFilter) bounds(r *runner.Runner) (before, since *runner.Container, err error) {
	if v := f["before"]; len(v) > 0 {
		if before, err = r.Get(v[len(v)-1]); err != nil {
			return nil, nil, err
		}
	}
	if v := f["since"]; len(v) > 0 {
		if since, err = r.Get(v[len(v)-1]); err != nil {
			return nil, nil, err
		}
	}
	return before, since, nil
}

// match reports whether c meets every key of the filter.
func (f psFilter) match(c *runner.Container, labels map[string]string, before, since *runner.Container) bool {
	any := func(key string, ok func(string) bool) bool {
		vs := f[key]
		if len(vs) == 0 {
			return true
		}
		for _, v := range vs {
			if ok(v) {
				return true
			}
		}
		return false
	}
	return any("id", func(v string) bool { return strings.HasPrefix(c.ID, v) }) &&
		any("name", func(v string) bool { return strings.Contains(c.Name, v) }) &&
		any("status", func(v string) bool { return string(c.Status()) == v }) &&
		any("exited", func(v string) bool {
			return c.State.Status == runner.StatusExited && strconv.Itoa(c.State.ExitCode) == v
		}) &&
		any("ancestor", func(v string) bool { return ancestorMatches(c, v) }) &&
		allLabels(f["label"], labels) &&
		(before == nil || c.Created.Before(before.Created)) &&
		(since == nil || c.Created.After(since.Created))
}

// ancestorMatches reports whether c was created from the image v: its
// name as given (with or without :latest) or its id.
func ancestorMatches(c *runner.Container, v string) bool {
	name := strings.TrimSuffix(c.ImageName, ":latest")
	return c.ImageName == v || name == strings.TrimSuffix(v, ":latest") ||
		(c.Image != "" && (strings.HasPrefix(c.Image.Hex(), strings.TrimPrefix(v, "sha256:")) || c.Image.String() == v))
}

// allLabels reports whether labels has every label=KEY or label=KEY=VALUE
// term.
func allLabels(terms []string, labels map[string]string) bool {
	for _, t := range terms {
		k, v, hasValue := strings.Cut(t, "=")
		got, ok := labels[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	return true
}
