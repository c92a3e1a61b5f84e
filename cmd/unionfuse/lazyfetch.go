package main

import (
	"github.com/unionfuse/unionfuse/fs"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/registry"
)

// Every union this program serves (a daemon process, or in the
// foreground) reads the lazily pulled layers of the store through the
// registry's fetcher.
func init() { daemon.Fetchers = lazyFetcher }

// lazyFetcher returns the fetcher of the lower directory dir when it is
// a partial layer of a store, else nil.
func lazyFetcher(dir string) (fs.Fetcher, error) {
	l, err := registry.OpenLazyLayer(dir)
	if l == nil || err != nil {
		return nil, err
	}
	return l, nil
}
