package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/storage"
	"github.com/containerd/continuity/fs"
	"github.com/containerd/log"
	"github.com/unionfuse/unionfuse/internal/unionserver"
)

// newPrefix starts the name of a snapshot directory being created: it
// is renamed to the snapshot's id in the transaction that records the
// snapshot, so a crash leaves only new-* directories, which Cleanup
// deletes.
const newPrefix = "new-"

// Prepare creates the active snapshot key on top of the committed
// snapshot parent ("" for none) and returns the mounts of its writable
// view.
func (s *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return s.create(ctx, snapshots.KindActive, key, parent, opts)
}

// View creates the read-only snapshot key of the committed snapshot
// parent and returns the mounts that show it.
func (s *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return s.create(ctx, snapshots.KindView, key, parent, opts)
}

// Mounts returns the mounts of the active or view snapshot key, the
// same that Prepare or View returned for it.
// In the served form its union is mounted again if it is not served any
// more (its server was killed, or a snapshotter of the helper form made
// it).
func (s *Snapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	var snap storage.Snapshot
	err := s.ms.WithTransaction(ctx, false, func(ctx context.Context) (err error) {
		snap, err = storage.GetSnapshot(ctx, key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("mounts of %s: %w", key, err)
	}
	return s.mounts(snap)
}

// create makes the directory of a new snapshot under a temporary name,
// records the snapshot, and renames the directory to the snapshot's id,
// all in one transaction, then returns its mounts (serving its union):
// on any error nothing is left.
func (s *Snapshotter) create(ctx context.Context, kind snapshots.Kind, key, parent string, opts []snapshots.Opt) ([]mount.Mount, error) {
	snap, err := s.record(ctx, kind, key, parent, opts)
	if err != nil {
		return nil, err
	}
	mounts, err := s.mounts(snap)
	if err != nil {
		if rerr := s.Remove(ctx, key); rerr != nil {
			log.G(ctx).WithError(rerr).Warnf("unionfuse snapshotter: remove %s after its union failed", key)
		}
		return nil, fmt.Errorf("create snapshot %s: %w", key, err)
	}
	return mounts, nil
}

// record is create's transaction: the snapshot's directory and metadata.
func (s *Snapshotter) record(ctx context.Context, kind snapshots.Kind, key, parent string, opts []snapshots.Opt) (snap storage.Snapshot, err error) {
	var tmp, final string
	defer func() {
		if err == nil {
			return
		}
		for _, dir := range []string{tmp, final} {
			if dir == "" {
				continue
			}
			if rerr := os.RemoveAll(dir); rerr != nil {
				log.G(ctx).WithError(rerr).Warnf("unionfuse snapshotter: remove %s", dir)
			}
		}
	}()
	err = s.ms.WithTransaction(ctx, true, func(ctx context.Context) error {
		var err error
		tmp, err = s.newDir(kind)
		if err != nil {
			return fmt.Errorf("create snapshot %s: %w", key, err)
		}
		snap, err = storage.CreateSnapshot(ctx, kind, key, parent, opts...)
		if err != nil {
			return fmt.Errorf("create snapshot %s: %w", key, err)
		}
		if len(snap.ParentIDs) > 0 {
			// The union's root is the upper's root: give it the owner of
			// the parent's, as the image's root directory has.
			if err := copyOwner(s.upperPath(snap.ParentIDs[0]), filepath.Join(tmp, "fs")); err != nil {
				return fmt.Errorf("create snapshot %s: %w", key, err)
			}
		}
		dir := filepath.Join(s.snapshotsDir(), snap.ID)
		if err := os.Rename(tmp, dir); err != nil {
			return fmt.Errorf("create snapshot %s: %w", key, err)
		}
		tmp, final = "", dir
		return nil
	})
	return snap, err
}

// newDir makes a snapshot directory under a temporary name: fs, and work
// for an active snapshot (a view has no upper to stage copy-up in).
func (s *Snapshotter) newDir(kind snapshots.Kind) (string, error) {
	tmp, err := os.MkdirTemp(s.snapshotsDir(), newPrefix)
	if err != nil {
		return "", err
	}
	if err := os.Mkdir(filepath.Join(tmp, "fs"), 0o755); err != nil {
		return tmp, err
	}
	// MkdirTemp and Mkdir obey the umask: the image root is 0755 whatever
	// the daemon's umask.
	if err := os.Chmod(filepath.Join(tmp, "fs"), 0o755); err != nil {
		return tmp, err
	}
	if kind == snapshots.KindActive {
		if err := os.Mkdir(filepath.Join(tmp, "work"), 0o711); err != nil {
			return tmp, err
		}
	}
	return tmp, nil
}

// copyOwner gives dst the owner and group of src.
func copyOwner(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	sys := st.Sys().(*syscall.Stat_t)
	if err := os.Lchown(dst, int(sys.Uid), int(sys.Gid)); err != nil {
		return fmt.Errorf("owner of %s: %w", dst, err)
	}
	return nil
}

// Commit records the active snapshot key as the committed snapshot name,
// with its disk usage; key no longer exists afterwards. The snapshot must
// not be mounted any more: its files become a read-only layer.
func (s *Snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	var id string
	err := s.ms.WithTransaction(ctx, false, func(ctx context.Context) (err error) {
		id, _, _, err = storage.GetInfo(ctx, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("commit %s: %w", key, err)
	}
	// Its files become a layer: its union goes (lazily, should a client
	// still use it), outside the transaction, which a hung unmount would
	// hold for every other request.
	if err := unionserver.Detach(s.mergedPath(id)); err != nil {
		return fmt.Errorf("commit %s: %w", key, err)
	}
	err = s.ms.WithTransaction(ctx, true, func(ctx context.Context) error {
		var err error
		if id, _, _, err = storage.GetInfo(ctx, key); err != nil {
			return fmt.Errorf("commit %s: %w", key, err)
		}
		du, err := fs.DiskUsage(ctx, s.upperPath(id))
		if err != nil {
			return fmt.Errorf("commit %s: usage: %w", key, err)
		}
		if _, err := storage.CommitActive(ctx, key, name, snapshots.Usage(du), opts...); err != nil {
			return fmt.Errorf("commit %s as %s: %w", key, name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The workdir only stages copy-up, and the mountpoint is for the
	// union: a layer has neither. Removed once the commit is recorded, so
	// a failed commit leaves the snapshot whole. The mountpoint with
	// rmdir, never RemoveAll: should a union be mounted there again (a
	// Mounts call racing the commit), deleting through it would delete
	// the layer's files.
	if err := os.RemoveAll(s.workPath(id)); err != nil {
		log.G(ctx).WithError(err).Warnf("unionfuse snapshotter: remove the workdir of %s", name)
	}
	if err := os.Remove(s.mergedPath(id)); err != nil && !os.IsNotExist(err) {
		log.G(ctx).WithError(err).Warnf("unionfuse snapshotter: remove the mountpoint of %s", name)
	}
	return nil
}

// Remove deletes the snapshot key, which no other snapshot may have as
// parent. Its metadata goes in one transaction; its directory after it,
// with any other directory no snapshot owns.
func (s *Snapshotter) Remove(ctx context.Context, key string) error {
	var stale []string
	err := s.ms.WithTransaction(ctx, true, func(ctx context.Context) error {
		if _, _, err := storage.Remove(ctx, key); err != nil {
			return fmt.Errorf("remove snapshot %s: %w", key, err)
		}
		var err error
		stale, err = s.staleDirs(ctx)
		return err
	})
	if err != nil {
		return err
	}
	return s.removeDirs(ctx, stale)
}

// Cleanup deletes the directories under snapshots/ that no snapshot owns:
// what a crash or an interrupted Remove left.
func (s *Snapshotter) Cleanup(ctx context.Context) error {
	var stale []string
	// A writable transaction: no snapshot is being created meanwhile, so
	// no directory about to be named by one is taken for stale.
	err := s.ms.WithTransaction(ctx, true, func(ctx context.Context) (err error) {
		stale, err = s.staleDirs(ctx)
		return err
	})
	if err != nil {
		return err
	}
	return s.removeDirs(ctx, stale)
}

// staleDirs lists the directories under snapshots/ that no snapshot in
// the metadata owns. It must run in a writable transaction (see Cleanup).
func (s *Snapshotter) staleDirs(ctx context.Context) ([]string, error) {
	ids, err := storage.IDMap(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot ids: %w", err)
	}
	ents, err := os.ReadDir(s.snapshotsDir())
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, e := range ents {
		if _, ok := ids[e.Name()]; ok {
			continue
		}
		stale = append(stale, filepath.Join(s.snapshotsDir(), e.Name()))
	}
	return stale, nil
}

// removeDirs deletes snapshot directories, detaching their unions first
// (lazily when in use, as a removal while mounted asks), going on past
// errors and returning them all.
func (s *Snapshotter) removeDirs(ctx context.Context, dirs []string) error {
	var errs []error
	for _, d := range dirs {
		// The mountpoint goes first, by rmdir: RemoveAll must not find a
		// union there to delete through.
		merged := filepath.Join(d, "merged")
		if err := unionserver.Detach(merged); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
			continue
		}
		if err := os.Remove(merged); err != nil && !os.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
			continue
		}
		log.G(ctx).Debugf("unionfuse snapshotter: removed %s", strings.TrimSuffix(d, "/"))
	}
	return errors.Join(errs...)
}
