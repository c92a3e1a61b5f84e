package cowcache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// mountsDir holds one record per image mounted with mount-image.
const mountsDir = "mounts"

// Mount records an image mounted read-only from its layer directories
// (unionfuse mount-image): mounts/<hash of Merged>.json. While the process
// it names runs, the image is in use: RemoveImage refuses to remove it
// and Prune keeps it. A record whose process is gone (unmounted, or the
// daemon died without cleaning up) is stale; the next RemoveImage or Prune
// drops it.
type Mount struct {
	// Image is the id of the mounted image.
	Image Digest `json:"Image"`
	// Merged is the mountpoint, absolute with symlinks resolved.
	Merged string `json:"Merged"`
	// PID is the process serving the mount.
	PID int `json:"PID"`
	// Start is that process's start time (field 22 of /proc/PID/stat, in
	// clock ticks since boot), so that a recycled PID does not count.
	Start uint64 `json:"Start"`
}

// Live reports whether the process that serves m is still running.
func (m Mount) Live() bool {
	start, err := procStart(m.PID)
	return err == nil && start == m.Start
}

// procStart returns when process pid started (field 22 of /proc/PID/stat);
// a zombie counts as gone.
func procStart(pid int) (uint64, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	// Field 2, the command, is in parentheses and may hold anything.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	// f[0] is field 3, the state; f[19] is field 22.
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("process %d: %w", pid, unix.ESRCH)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// mountRecord returns the path of the record for mountpoint merged.
func (s *Store) mountRecord(merged string) string {
	sum := sha256.Sum256([]byte(merged))
	return s.path(mountsDir, hex.EncodeToString(sum[:8])+".json")
}

// MountImage resolves ref and records, under the store's lock (so that no
// RemoveImage runs in between), that the calling process mounts it at
// merged, which must be absolute with symlinks resolved. When a daemon
// takes over the mount, HandOverMount names it; when the mount fails or
// ends in this process, Unmounted drops the record. On a read-only store,
// where nothing can be removed anyway, no record is written.
func (s *Store) MountImage(ref, merged string) (Image, error) {
	release, err := s.rlock()
	if err != nil {
		return Image{}, err
	}
	defer release()
	img, err := s.resolve(ref)
	if err != nil {
		return Image{}, err
	}
	start, err := procStart(os.Getpid())
	if err != nil {
		return Image{}, fmt.Errorf("record mount of %s: %w", img.ID.Short(), err)
	}
	err = s.writeMount(Mount{Image: img.ID, Merged: merged, PID: os.Getpid(), Start: start})
	if errors.Is(err, unix.EROFS) {
		return img, nil
	}
	return img, err
}

// HandOverMount records that process pid, started at start (clock ticks
// since boot, as in Mount), now serves the mount at merged, which
// MountImage recorded for the calling process.
func (s *Store) HandOverMount(merged string, pid int, start uint64) error {
	release, err := s.rlock()
	if err != nil {
		return err
	}
	defer release()
	m, err := s.readMount(s.mountRecord(merged))
	if errors.Is(err, os.ErrNotExist) {
		return nil // a read-only store
	}
	if err != nil {
		return err
	}
	m.PID, m.Start = pid, start
	return s.writeMount(m)
}

// Unmounted drops the record of the mount at merged if it names the
// calling process.
func (s *Store) Unmounted(merged string) error {
	release, err := s.rlock()
	if err != nil {
		return err
	}
	defer release()
	p := s.mountRecord(merged)
	if m, err := s.readMount(p); err == nil && m.PID == os.Getpid() {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("drop mount record of %s: %w", merged, err)
		}
	}
	return nil
}

// Mounts returns the images mounted now: the records whose process runs.
func (s *Store) Mounts() ([]Mount, error) {
	release, err := s.rlock()
	if err != nil {
		return nil, err
	}
	defer release()
	return s.mounts(false)
}

// mounts reads the records of mounts and returns those that are live.
// With dropStale (the caller holds the lock exclusive, so no MountImage
// is writing a record meanwhile) it removes the stale ones.
func (s *Store) mounts(dropStale bool) ([]Mount, error) {
	ents, err := os.ReadDir(s.path(mountsDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	var live []Mount
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue // a temporary file of atomicfile
		}
		p := s.path(mountsDir, e.Name())
		m, err := s.readMount(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil && m.Live() {
			live = append(live, m)
			continue
		}
		if dropStale {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("drop stale mount record: %w", err)
			}
		}
	}
	return live, nil
}

// readMount reads one record. A record that cannot be parsed is returned
// with an error that does not wrap os.ErrNotExist (so it counts as stale).
func (s *Store) readMount(p string) (Mount, error) {
	var m Mount
	b, err := os.ReadFile(p)
	if err != nil {
		return m, fmt.Errorf("read mount record: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("read mount record %s: %w", p, err)
	}
	return m, nil
}

// writeMount writes m's record atomically.
func (s *Store) writeMount(m Mount) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("record mount of %s: %w", m.Image.Short(), err)
	}
	if err := os.MkdirAll(s.path(mountsDir), 0o700); err != nil {
		return storageError(s.root, fmt.Errorf("record mount of %s: %w", m.Image.Short(), err))
	}
	if err := atomicfile.WriteFile(s.mountRecord(m.Merged), append(b, '\n'), 0o600); err != nil {
		return storageError(s.root, fmt.Errorf("record mount of %s: %w", m.Image.Short(), err))
	}
	return nil
}

// mountedImages returns, for each image with a live mount, its first
// mountpoint, dropping stale records. The caller holds the lock exclusive.
func (s *Store) mountedImages() (map[Digest]string, error) {
	live, err := s.mounts(true)
	if err != nil {
		return nil, err
	}
	at := map[Digest]string{}
	for _, m := range live {
		if _, ok := at[m.Image]; !ok {
			at[m.Image] = m.Merged
		}
	}
	return at, nil
}
