package cowcache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// RootEnv names the environment variable that overrides the default root.
const RootEnv = "UNIONFUSE_ROOT"

// DefaultRoot returns the store's root when none is given: $UNIONFUSE_ROOT
// if set; else /var/lib/unionfuse for root; else $XDG_DATA_HOME/unionfuse,
// or ~/.local/share/unionfuse when XDG_DATA_HOME is unset.
func DefaultRoot() string {
	if r := os.Getenv(RootEnv); r != "" {
		return r
	}
	if os.Geteuid() == 0 {
		return "/var/lib/unionfuse"
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "unionfuse")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".local", "share", "unionfuse")
}

// Store is a layer store rooted at one directory (see the package doc for
// the layout). It is a specification first; the methods follow it.
//
// # Layers
//
// A layer moves through these states; nothing else is ever observable:
//
//		           Prepare(parent)                 Commit()
//		(absent) ------------------> pending --------------------> committed
//		                              |   \  crash / Ctrl-C           |
//		                       Abort()|    `----> debris ----.        | RemoveImage, Prune
//		                              v            Cleanup() |        | (no image or container
//		                          (absent) <-----------------'        v  uses it any more)
//		                                                          (absent)
//
//	  - Prepare(parent) makes a pending layer: a fresh directory under tmp/
//	    with diff/ and work/, owned by this process through a lock file.
//	    parent is the ChainID of the layer below ("" for a bottom layer) and
//	    must be committed. The caller fills Pending.Dir(), either with
//	    Pending.ApplyTar (an image layer tarball; OCI whiteouts become kernel
//	    whiteouts), by writing into it directly, or by having an overlay
//	    upper directory moved in and converted in place (CommitUpper with
//	    UpperCommit.Move: a build step's upper, see moveupper.go).
//	  - Commit gives the layer its identity: its DiffID (the digest of the
//	    tarball it came from, or of the canonical tarball of the directory)
//	    and ChainID. Everything is fsynced, the directory is renamed to
//	    layers/<ChainID>, its short link is made and the committed marker is
//	    written last. If that layer is already committed, the pending one is
//	    dropped and the existing one returned: a layer is stored once.
//	  - A committed layer is read-only and never changes again. It stays as
//	    long as an image or container refers to it.
//	  - Abort drops a pending layer. A process that dies leaves debris (a
//	    tmp/ entry whose lock nobody holds, or a layer directory without its
//	    committed marker); Cleanup, which every writing command runs first,
//	    removes it. Debris is never used.
//
// # Images
//
// An image is an OCI manifest + config in images/, naming its layers by
// DiffID (config rootfs.diff_ids, bottom first); its id is the config's
// digest. An image is added only after all its layers are committed, by one
// atomic rewrite of images/index.json, so a reader sees all of it or none.
// Names (REPOSITORY:TAG) are unique: giving a name to an image takes it
// from any other image, which stays as a dangling image (<none>:<none>)
// until it is removed or pruned. An image stays while a container uses it,
// while it is mounted (a live record in mounts/, see Mount) or while a
// live Lease holds it (a running build).
//
// # Locking
//
// Methods that read take the store's lock shared; methods that change the
// store take it exclusive for the change. Filling a pending layer holds only
// the pending layer's own lock, so a long import does not block readers.
type Store struct {
	// MaxLayerSize caps the uncompressed size of a layer tarball that
	// ApplyTar unpacks (0: DefaultMaxLayerSize).
	MaxLayerSize int64

	root string
	lock *os.File
	// held is the lock mode this Store holds: 0, unix.LOCK_SH, unix.LOCK_EX.
	held int
	// userXattr caches UserXattr's probe.
	userXattr *bool
}

// Subdirectories of the root.
const (
	layersDir     = "layers"
	linksDir      = "l"
	imagesDir     = "images"
	containersDir = "containers"
	cacheDir      = "cache"
	tmpDir        = "tmp"
	lockName      = "lock"
	committedName = "committed"
)

// Open opens the store at root, creating its layout if needed, and removes
// what interrupted operations left when no other process is using the
// store. An empty root means DefaultRoot().
func Open(root string) (*Store, error) {
	if root == "" {
		root = DefaultRoot()
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	for _, d := range []string{"", layersDir, linksDir, imagesDir, containersDir, cacheDir, tmpDir} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, storageError(root, fmt.Errorf("open store %s: %w", root, err))
		}
	}
	// Mounts below the store are recorded (in /proc/self/mountinfo, in
	// pid files) under their resolved paths: a root reached through a
	// symbolic link (/home -> /var/home) must be named the same way.
	if resolved, err := filepath.EvalSymlinks(root); err == nil {
		root = resolved
	}
	lf, err := os.OpenFile(filepath.Join(root, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, unix.EROFS) {
		// A store on a read-only filesystem can still be read.
		lf, err = os.Open(filepath.Join(root, lockName))
	}
	if err != nil {
		return nil, storageError(root, fmt.Errorf("open store %s: %w", root, err))
	}
	s := &Store{root: root, lock: lf}
	if err := s.initImages(); err != nil {
		lf.Close()
		return nil, err
	}
	// Best effort: clean debris now if nobody else is in the store.
	if flock(lf, unix.LOCK_EX|unix.LOCK_NB) == nil {
		s.held = unix.LOCK_EX
		err := s.cleanup()
		s.unlock()
		if err != nil {
			lf.Close()
			return nil, err
		}
	}
	return s, nil
}

// Close releases the store's lock file.
func (s *Store) Close() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

// Root returns the store's root directory (absolute).
func (s *Store) Root() string { return s.root }

// path joins elements below the root.
func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// rlock takes the store's lock shared and returns its release.
func (s *Store) rlock() (func(), error) { return s.take(unix.LOCK_SH) }

// wlock takes the store's lock exclusive, removes debris, and returns the
// lock's release.
func (s *Store) wlock() (func(), error) {
	release, err := s.take(unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	if err := s.cleanup(); err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// take locks in mode how unless this Store already holds the lock at
// least that strongly; the release undoes only what take did.
func (s *Store) take(how int) (func(), error) {
	if s.held == unix.LOCK_EX || s.held == how {
		return func() {}, nil
	}
	if err := flock(s.lock, how); err != nil {
		return nil, fmt.Errorf("lock store %s: %w", s.root, err)
	}
	prev := s.held
	s.held = how
	return func() {
		if prev == 0 {
			s.unlock()
			return
		}
		flock(s.lock, prev)
		s.held = prev
	}, nil
}

func (s *Store) unlock() {
	flock(s.lock, unix.LOCK_UN)
	s.held = 0
}

// Cleanup removes the debris of interrupted operations: pending layers
// whose process is gone, layer directories without a committed marker,
// short links to nothing and temporary files; and exit records nobody
// waited for. Every writing method runs it
// first; it is exported for `unionfuse system prune`.
func (s *Store) Cleanup() error {
	release, err := s.wlock()
	if err != nil {
		return err
	}
	release()
	return nil
}

// cleanup does the work of Cleanup; the caller holds the lock exclusive.
func (s *Store) cleanup() error {
	ents, err := os.ReadDir(s.path(tmpDir))
	if err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	for _, e := range ents {
		name, isLock := strings.CutSuffix(e.Name(), ".lock")
		if !isLock {
			owner, _, _ := strings.Cut(name, ".")
			if _, err := os.Stat(s.path(tmpDir, owner+".lock")); errors.Is(err, os.ErrNotExist) {
				if err := removeTree(s.path(tmpDir, name)); err != nil {
					return fmt.Errorf("cleanup: %w", err)
				}
			}
			continue
		}
		if err := s.removeIfAbandoned(name); err != nil {
			return fmt.Errorf("cleanup: %w", err)
		}
	}
	ents, err = os.ReadDir(s.path(layersDir))
	if err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	for _, e := range ents {
		if _, err := os.Stat(s.path(layersDir, e.Name(), committedName)); errors.Is(err, os.ErrNotExist) {
			if err := removeTree(s.path(layersDir, e.Name())); err != nil {
				return fmt.Errorf("cleanup: %w", err)
			}
		}
	}
	ents, err = os.ReadDir(s.path(linksDir))
	if err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	for _, e := range ents {
		if _, err := os.Stat(s.path(linksDir, e.Name())); errors.Is(err, os.ErrNotExist) {
			os.Remove(s.path(linksDir, e.Name()))
		}
	}
	s.dropOldExits()
	return s.cleanupBlobs()
}

// removeIfAbandoned removes tmp/<name> and tmp/<name>.lock when no process
// holds the lock.
func (s *Store) removeIfAbandoned(name string) error {
	lp := s.path(tmpDir, name+".lock")
	f, err := os.Open(lp)
	if err != nil {
		return nil // gone meanwhile
	}
	defer f.Close()
	if flock(f, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return nil // in use
	}
	if err := removeTree(s.path(tmpDir, name)); err != nil {
		return err
	}
	// The owner removes its lock file after unlocking it, without the
	// store's lock: it may have done so since the flock above.
	if err := os.Remove(lp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// tempFile creates an empty file in tmp/, owned by this process like a
// pending layer (Cleanup removes it if the process dies). done closes and
// removes it.
func (s *Store) tempFile(purpose string) (*os.File, func(), error) {
	p, unlock, err := s.tempOwner()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", purpose, err)
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		unlock()
		return nil, nil, fmt.Errorf("%s: %w", purpose, err)
	}
	return f, func() { f.Close(); os.Remove(p); unlock() }, nil
}

// tempDir is tempFile for a directory; done removes it and its content.
func (s *Store) tempDir(purpose string) (string, func(), error) {
	p, unlock, err := s.tempOwner()
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", purpose, err)
	}
	if err := os.Mkdir(p, 0o700); err != nil {
		unlock()
		return "", nil, fmt.Errorf("%s: %w", purpose, err)
	}
	return p, func() { removeTree(p); unlock() }, nil
}

// tempOwner makes and locks tmp/<random>.lock and returns tmp/<random>,
// which is this process's to create, and the release of the lock.
func (s *Store) tempOwner() (string, func(), error) {
	name, lf, err := s.newOwnerLock()
	if err != nil {
		return "", nil, err
	}
	lp := s.path(tmpDir, name+".lock")
	return s.path(tmpDir, name), func() { os.Remove(lp); lf.Close() }, nil
}

// ownerLockTries bounds newOwnerLock's retries: each needs a cleanup to
// run in the instant between the lock file's creation and its locking.
const ownerLockTries = 100

// lockedFileHasName reports whether path still names the open file f:
// the same inode (on NFS an unlinked open file only moves to .nfsXXXX).
func lockedFileHasName(f *os.File, path string) bool {
	var held, named unix.Stat_t
	if unix.Fstat(int(f.Fd()), &held) != nil || unix.Stat(path, &named) != nil {
		return false
	}
	return held.Dev == named.Dev && held.Ino == named.Ino
}

// newOwnerLock creates tmp/<name>.lock for a new random name and holds it
// locked exclusive: tmp/<name> is then the caller's until it removes the
// lock file and closes lf.
//
// The file cannot be created locked. A cleanup (of another process or
// Store) that locks it first finds it abandoned and removes it: then this
// lock is on a file without a name, and a later cleanup would remove
// tmp/<name> too. So the lock counts only while the file still has its
// name, and is made again otherwise.
func (s *Store) newOwnerLock() (name string, lf *os.File, err error) {
	for range ownerLockTries {
		name = randomName(16)
		lp := s.path(tmpDir, name+".lock")
		if lf, err = os.OpenFile(lp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			return "", nil, err
		}
		err = flock(lf, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil && lockedFileHasName(lf, lp) {
			return name, lf, nil
		}
		lf.Close()
		if err != nil && !errors.Is(err, unix.EWOULDBLOCK) {
			os.Remove(lp)
			return "", nil, err
		}
		// A cleanup has it (EWOULDBLOCK) or has removed it: it removes
		// the name, if it is not gone already.
	}
	return "", nil, errors.New("lock a temporary file: cleanups of other processes kept taking it")
}

// storageError says plainly when err comes from the store's filesystem
// being full or read-only, the two conditions a user must fix outside
// unionfuse; other errors are returned as they are.
func storageError(root string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return fmt.Errorf("no space left for the store %s: %w", root, err)
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("the store %s is on a read-only filesystem: %w", root, err)
	}
	return err
}
