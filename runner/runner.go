package runner

import "github.com/unionfuse/unionfuse/cowcache"

// Runner creates and runs the containers of one store.
type Runner struct {
	store  *cowcache.Store
	puller Puller
}

// New returns a runner for the containers of s.
func New(s *cowcache.Store) *Runner { return &Runner{store: s} }

// Store returns the runner's store.
func (r *Runner) Store() *cowcache.Store { return r.store }

// WithPuller makes Create fetch the images the store lacks through p (see
// Options.Pull) and returns r. Without a Puller nothing is pulled.
func (r *Runner) WithPuller(p Puller) *Runner {
	r.puller = p
	return r
}
