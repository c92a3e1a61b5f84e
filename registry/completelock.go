package registry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// completeLockFile, in partial/, is held by the process completing the
// layer: every union of an image's containers serves its partial layers
// in a daemon of its own, and each would stream the whole blob again.
const completeLockFile = "complete.lock"

// completeLockPoll is how often a completion that found the lock held
// tries again.
const completeLockPoll = 250 * time.Millisecond

// lockCompletion waits until this process may complete the layer, and
// returns the release of the lock, or done when there is nothing left
// to complete: another process completed the layer meanwhile.
func (l *LazyLayer) lockCompletion(ctx context.Context) (release func(), done bool, err error) {
	f, err := os.OpenFile(filepath.Join(l.pdir, completeLockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, os.ErrNotExist) && !l.stillPartial() {
		return nil, true, nil // partial/ is gone: completed
	}
	if err != nil {
		return nil, false, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, false, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, false, ctx.Err()
		case <-time.After(completeLockPoll):
		}
	}
	if !l.stillPartial() {
		f.Close()
		return nil, true, nil
	}
	return func() { f.Close() }, false, nil
}
