package main

import (
	"fmt"
	"path"
	"strings"

	"github.com/unionfuse/unionfuse/cowcache"
)

// This file holds docker images's --filter and its REPOSITORY[:TAG]
// argument: KEY=VALUE terms, the values of one key alternatives (any may
// match), the keys all to be met.

// imagesFilter is the parsed --filter terms, by key.
type imagesFilter map[string][]string

// imagesFilterKeys are the keys images --filter takes.
var imagesFilterKeys = map[string]bool{"dangling": true, "label": true, "before": true, "since": true, "reference": true}

// parseImagesFilter parses --filter KEY=VALUE terms.
func parseImagesFilter(terms []string) (imagesFilter, error) {
	f := imagesFilter{}
	for _, t := range terms {
		k, v, ok := strings.Cut(t, "=")
		if !ok || !imagesFilterKeys[k] {
			return nil, fmt.Errorf("invalid filter %q (want KEY=VALUE, KEY one of dangling, label, before, since, reference)", t)
		}
		switch k {
		case "dangling":
			if v != "true" && v != "false" && v != "1" && v != "0" {
				return nil, fmt.Errorf("invalid filter %q: dangling takes true or false", t)
			}
		case "reference":
			if _, err := path.Match(v, ""); err != nil {
				return nil, fmt.Errorf("invalid filter %q: %v", t, err)
			}
		}
		f[k] = append(f[k], v)
	}
	return f, nil
}

// imageBounds are the creation times before= and since= name.
type imageBounds struct {
	before, since *cowcache.Image
}

// bounds resolves before= and since= through the store.
func (f imagesFilter) bounds(s *cowcache.Store) (imageBounds, error) {
	var b imageBounds
	for key, dst := range map[string]**cowcache.Image{"before": &b.before, "since": &b.since} {
		if v := f[key]; len(v) > 0 {
			img, err := s.Image(v[len(v)-1])
			if err != nil {
				return b, err
			}
			*dst = &img
		}
	}
	return b, nil
}

// match reports whether img meets every key but reference, which
// names picks (docker matches it name by name).
func (f imagesFilter) match(img cowcache.Image, b imageBounds) bool {
	if v := f["dangling"]; len(v) > 0 {
		want := v[len(v)-1] == "true" || v[len(v)-1] == "1"
		if want != (len(img.Names) == 0) {
			return false
		}
	}
	var labels map[string]string
	if img.Config != nil {
		labels = img.Config.Config.Labels
	}
	return allLabels(f["label"], labels) &&
		(b.before == nil || img.Created.Before(b.before.Created)) &&
		(b.since == nil || img.Created.After(b.since.Created))
}

// names returns the names of img that reference= lets through (all
// of them when there is no such term; none of a dangling image's when
// there is), and whether the image is shown at all.
func (f imagesFilter) names(img cowcache.Image) ([]string, bool) {
	patterns := f["reference"]
	if len(patterns) == 0 {
		return img.Names, true
	}
	var kept []string
	for _, n := range img.Names {
		for _, p := range patterns {
			if referenceMatch(p, n) {
				kept = append(kept, n)
				break
			}
		}
	}
	return kept, len(kept) > 0
}

// referenceMatch is docker's reference.FamiliarMatch: pattern, a
// path.Match pattern, matches REPOSITORY:TAG or, failing that,
// REPOSITORY alone ("busybox" and "busy*" match busybox:latest).
func referenceMatch(pattern, name string) bool {
	if ok, _ := path.Match(pattern, name); ok {
		return true
	}
	repo, _ := cowcache.SplitName(name)
	ok, _ := path.Match(pattern, repo)
	return ok
}
