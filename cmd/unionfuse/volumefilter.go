package main

import (
	"fmt"
	"strings"

	"github.com/unionfuse/unionfuse/cowcache"
)

// volumeFilter is volume ls's parsed --filter terms, by key: the values
// of one key are alternatives, the keys all to be met (docker's rule).
type volumeFilter map[string][]string

// parseVolumeFilter parses --filter KEY=VALUE terms.
func parseVolumeFilter(terms []string) (volumeFilter, error) {
	f := volumeFilter{}
	for _, t := range terms {
		k, v, ok := strings.Cut(t, "=")
		switch {
		case !ok || (k != "dangling" && k != "name" && k != "label" && k != "driver"):
			return nil, fmt.Errorf("invalid filter %q (want KEY=VALUE, KEY one of dangling, name, label, driver)", t)
		case k == "dangling" && v != "true" && v != "false" && v != "1" && v != "0":
			return nil, fmt.Errorf("invalid filter %q: dangling takes true or false", t)
		}
		f[k] = append(f[k], v)
	}
	return f, nil
}

// match reports whether v (used: some container mounts it) passes f.
func (f volumeFilter) match(v cowcache.Volume, used bool) bool {
	any := func(key string, ok func(string) bool) bool {
		if len(f[key]) == 0 {
			return true
		}
		for _, want := range f[key] {
			if ok(want) {
				return true
			}
		}
		return false
	}
	return any("dangling", func(w string) bool { return (w == "true" || w == "1") != used }) &&
		any("name", func(w string) bool { return strings.Contains(v.Name, w) }) &&
		any("driver", func(w string) bool { return w == "local" }) &&
		any("label", func(w string) bool {
			k, val, hasVal := strings.Cut(w, "=")
			got, ok := v.Labels[k]
			return ok && (!hasVal || got == val)
		})
}
