package main

import (
	"context"
	"os"
	"time"

	"github.com/unionfuse/unionfuse/fs"
	"github.com/unionfuse/unionfuse/internal/daemon"
	"github.com/unionfuse/unionfuse/registry"
)

// Every union this program serves (a daemon process, or in the
// foreground) reads the lazily pulled layers of the store through the
// registry's fetcher.
func init() { daemon.Fetchers = lazyFetcher }

// completeAfterEnv delays (a Go duration) the background completion of
// the lazy layers a union serves, or turns it off ("off").
const completeAfterEnv = "UNIONFUSE_LAZY_COMPLETE_AFTER"

// defaultCompleteAfter lets the container's first reads go first.
const defaultCompleteAfter = 2 * time.Second

// lazyFetcher returns the fetcher of the lower directory dir when it is
// a partial layer of a store, else nil. In the background, the files the
// image marks for prefetch are fetched at once, then the rest of the
// layer (see completeAfterEnv), after which it is a normal layer of the
// store; a completion the registry cuts short is tried again later.
func lazyFetcher(dir string, logf func(string, ...any)) (fs.Fetcher, error) {
	l, err := registry.OpenLazyLayer(dir)
	if l == nil || err != nil {
		return nil, err
	}
	after := defaultCompleteAfter
	v := os.Getenv(completeAfterEnv)
	if d, err := time.ParseDuration(v); err == nil {
		after = d
	}
	go func() {
		if err := l.Prefetch(); err != nil {
			logf("lazy layer %s: prefetch: %v", dir, err)
		}
		if v == "off" {
			return
		}
		time.Sleep(after)
		if err := l.CompleteRetrying(context.Background(), logf); err != nil {
			logf("lazy layer %s: background completion: %v", dir, err)
		} else {
			logf("lazy layer %s: complete", dir)
		}
	}()
	return l, nil
}
