package runner

import "github.com/unionfuse/unionfuse/cowcache"

// Runner creates and runs the containers of one store.
type Runner struct {
	store *cowcache.Store
}

// New returns a runner for the containers of s.
func New(s *cowcache.Store) *Runner { return &Runner{store: s} }

// Store returns the runner's store.
func (r *Runner) Store() *cowcache.Store { return r.store }
