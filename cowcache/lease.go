package cowcache

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// leasesDir holds the leases: one file per lease, locked (flock) by its
// holder for as long as it lives, listing the ids of the images it holds,
// one a line. The lock dies with the process, so a lease never outlives a
// killed holder.
const leasesDir = "leases"

// A Lease keeps images in the store while it is held: Prune skips them
// and RemoveImage refuses them, as docker keeps the images a running
// build uses. A build takes one (Store.Lease), adds each image it steps
// onto, and releases it when it ends.
type Lease struct {
	s *Store
	f *os.File
}

// Lease starts a lease holding no image yet.
func (s *Store) Lease() (*Lease, error) {
	// Under the store's lock: Prune (which holds it exclusive) never sees
	// the file before its lock is taken, and drops it as dead.
	release, err := s.rlock()
	if err != nil {
		return nil, err
	}
	defer release()
	if err := os.MkdirAll(s.path(leasesDir), 0o700); err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	p := s.path(leasesDir, randomName(16))
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		os.Remove(p)
		return nil, fmt.Errorf("lease: %w", err)
	}
	return &Lease{s: s, f: f}, nil
}

// Add adds the image id to the lease. It fails when the image is no
// longer in the store.
func (l *Lease) Add(id Digest) error {
	release, err := l.s.rlock()
	if err != nil {
		return err
	}
	defer release()
	if _, err := l.s.resolve(id.String()); err != nil {
		return err
	}
	if _, err := l.f.WriteString(id.String() + "\n"); err != nil {
		return fmt.Errorf("lease image %s: %w", id.Short(), err)
	}
	return nil
}

// Release ends the lease. Its images may be removed again.
func (l *Lease) Release() error {
	err := os.Remove(l.f.Name())
	l.f.Close()
	return err
}

// leased returns the images that live leases hold, and removes the files
// of dead ones. The caller holds the store's lock exclusive.
func (s *Store) leased() (map[Digest]bool, error) {
	ents, err := os.ReadDir(s.path(leasesDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	held := map[Digest]bool{}
	for _, e := range ents {
		p := s.path(leasesDir, e.Name())
		f, err := os.Open(p)
		if err != nil {
			continue // released meanwhile
		}
		if flock(f, unix.LOCK_SH|unix.LOCK_NB) == nil {
			os.Remove(p) // its holder is gone
			f.Close()
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if id := strings.TrimSpace(sc.Text()); id != "" {
				held[Digest(id)] = true
			}
		}
		f.Close()
	}
	return held, nil
}
