package runner

import (
	"errors"
	"io"
	"os"
	"time"
)

// Logs copies the container's log to w; with follow it keeps copying
// what is appended until the container is no longer running. A container
// that never ran detached has an empty log.
func (r *Runner) Logs(c *Container, w io.Writer, follow bool) error {
	f, err := os.Open(c.LogPath())
	if errors.Is(err, os.ErrNotExist) && !follow {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
		if !follow {
			return nil
		}
		if err := r.Reload(c); err != nil || !c.Running() {
			_, err := io.Copy(w, f) // what was written before it stopped
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
