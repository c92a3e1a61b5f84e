package registry

import (
	"context"
	"errors"
	"time"

	"github.com/unionfuse/unionfuse/cowcache"
)

// The waits between background completion attempts: the first, doubled
// after each failure up to the last.
var (
	completeRetryFirst = 10 * time.Second
	completeRetryMax   = 10 * time.Minute
)

// CompleteRetrying completes the layer as Complete does, and after a
// failure that may pass (the registry unreachable, refusing or stalled)
// tries again, after waits that grow from completeRetryFirst to
// completeRetryMax. It returns nil once the layer is complete (also when
// another process completed it), ctx's error when ctx ends, and the
// failure when trying again could only repeat it: the registry's blob
// is not the layer the image names. logf reports each failure it
// retries.
func (l *LazyLayer) CompleteRetrying(ctx context.Context, logf func(string, ...any)) error {
	wait := completeRetryFirst
	for {
		err := l.Complete(ctx)
		if err == nil || !l.stillPartial() {
			return nil
		}
		if errors.Is(err, cowcache.ErrDigestMismatch) || ctx.Err() != nil {
			return err
		}
		logf("lazy layer %s: background completion: %v (trying again in %v)", l.diff, err, wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, completeRetryMax)
	}
}

// stillPartial reports whether the layer's partial/ is still there: no
// process has completed it.
func (l *LazyLayer) stillPartial() bool {
	_, ok := cowcache.PartialDir(l.diff)
	return ok
}
