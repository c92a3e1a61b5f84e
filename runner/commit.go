package runner

import (
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/unionfuse/unionfuse/cowcache"
)

// CommitOptions describe the image `unionfuse commit` makes.
type CommitOptions struct {
	Name    string // REPOSITORY[:TAG]; "" leaves the image dangling
	Comment string
	Author  string
	// Change, when not nil, edits the new image's config last (commit
	// -c: the command layer's, through the builder's Dockerfile parser).
	Change func(*v1.Config) error
}

// Commit makes a new image from the container: its image's layers plus
// the container's layer, with the container's command, environment,
// working directory and user as the image's config. A running container
// is paused while its layer is read, as docker commit does.
func (r *Runner) Commit(c *Container, o CommitOptions) (cowcache.Image, error) {
	resume := holdStill(c)
	defer resume()
	img, err := r.imageOf(c)
	if err != nil {
		return cowcache.Image{}, fmt.Errorf("commit %s: %w", c.ShortID(), err)
	}
	cfg := v1.Config{}
	if img != nil && img.Config != nil {
		cfg = img.Config.Config
	}
	cfg.Entrypoint = c.Config.Entrypoint
	cfg.Cmd = c.Config.Cmd
	cfg.Env = c.Config.Env
	cfg.WorkingDir = c.Config.WorkDir
	cfg.User = c.Config.User
	if o.Change != nil {
		if err := o.Change(&cfg); err != nil {
			return cowcache.Image{}, err
		}
	}
	// The container's layer is copied, never moved into the image
	// (UpperCommit.Move, as a build step's is): the container keeps it
	// after the commit, as docker commit leaves its container as it
	// was, and a running container's layer is live under its mount.
	return r.store.CommitUpper(img, cowcache.UpperCommit{
		UpperDir: c.UpperDir(),
		Config:   &cfg,
		History: v1.History{
			Created:   v1.Time{Time: time.Now().UTC().Truncate(time.Second)},
			CreatedBy: strings.Join(c.Config.Args, " "),
			Comment:   o.Comment,
			Author:    o.Author,
		},
		Name: o.Name,
	})
}
