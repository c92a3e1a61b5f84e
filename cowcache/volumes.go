package cowcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// Volumes, as docker's local driver keeps them:
//
//	volumes/<name>/_data         what the container sees (bind-mounted)
//	volumes/<name>/volume.json   CreatedAt, Labels, Options
//
// A volume is made in tmp/ and renamed into place with its record, so a
// directory below volumes/ is always a whole volume. The store knows
// nothing of who uses a volume: the runner's containers name theirs in
// their config, and the runner refuses to remove one in use.
const (
	volumesDir     = "volumes"
	volumeDataName = "_data"
	volumeRecord   = "volume.json"
)

// AnonymousLabel marks a volume made for a container (run -v /path, the
// image's VOLUMEs) rather than by name, as docker 23 does: volume prune
// without -a removes only these.
const AnonymousLabel = "com.docker.volume.anonymous"

// ErrNoSuchVolume is returned (wrapped) for a volume name the store lacks.
var ErrNoSuchVolume = errors.New("no such volume")

// Volume is one volume of the store, with docker's fields.
type Volume struct {
	Name       string            `json:"Name"`
	CreatedAt  time.Time         `json:"CreatedAt"`
	Labels     map[string]string `json:"Labels"`
	Options    map[string]string `json:"Options"`
	Mountpoint string            `json:"-"` // volumes/<name>/_data
}

// Anonymous reports whether v was made for a container, without a name.
func (v Volume) Anonymous() bool {
	_, ok := v.Labels[AnonymousLabel]
	return ok
}

// VolumeDir returns volumes/<name>/_data, the directory a container
// mounts.
func (s *Store) VolumeDir(name string) string {
	return s.path(volumesDir, name, volumeDataName)
}

// CreateVolume makes the volume name with labels and returns it, and
// whether it is new; a volume that exists already is returned as it is
// (docker volume create is idempotent). Its _data belongs to the caller
// (the container's root, without root) with mode 0755.
func (s *Store) CreateVolume(name string, labels map[string]string) (Volume, bool, error) {
	if v, err := s.Volume(name); err == nil {
		return v, false, nil
	}
	if err := os.MkdirAll(s.path(volumesDir), 0o700); err != nil {
		return Volume{}, false, storageError(s.root, fmt.Errorf("create volume %s: %w", name, err))
	}
	tmp, done, err := s.tempDir("create volume " + name)
	if err != nil {
		return Volume{}, false, err
	}
	defer done()
	if labels == nil {
		labels = map[string]string{}
	}
	v := Volume{Name: name, CreatedAt: time.Now().UTC().Truncate(time.Second), Labels: labels, Options: map[string]string{}}
	if err := os.Mkdir(tmp+"/"+volumeDataName, 0o755); err != nil {
		return Volume{}, false, storageError(s.root, fmt.Errorf("create volume %s: %w", name, err))
	}
	os.Chmod(tmp+"/"+volumeDataName, 0o755) // whatever the umask
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return Volume{}, false, err
	}
	if err := atomicfile.WriteFile(tmp+"/"+volumeRecord, append(b, '\n'), 0o600); err != nil {
		return Volume{}, false, storageError(s.root, fmt.Errorf("create volume %s: %w", name, err))
	}
	os.Chmod(tmp, 0o711) // the container's users reach _data
	if err := os.Rename(tmp, s.path(volumesDir, name)); err != nil {
		if errors.Is(err, os.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
			v, err := s.Volume(name) // made meanwhile by another process
			return v, false, err
		}
		return Volume{}, false, storageError(s.root, fmt.Errorf("create volume %s: %w", name, err))
	}
	v.Mountpoint = s.VolumeDir(name)
	return v, true, nil
}

// Volume returns the volume name, or an error wrapping ErrNoSuchVolume.
func (s *Store) Volume(name string) (Volume, error) {
	b, err := os.ReadFile(s.path(volumesDir, name, volumeRecord))
	if errors.Is(err, os.ErrNotExist) || name == "" {
		return Volume{}, fmt.Errorf("%s: %w", name, ErrNoSuchVolume)
	}
	if err != nil {
		return Volume{}, err
	}
	var v Volume
	if err := json.Unmarshal(b, &v); err != nil {
		return Volume{}, fmt.Errorf("volume %s: %s: %w", name, volumeRecord, err)
	}
	v.Name = name
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if v.Options == nil {
		v.Options = map[string]string{}
	}
	v.Mountpoint = s.VolumeDir(name)
	return v, nil
}

// Volumes returns every volume, by name.
func (s *Store) Volumes() ([]Volume, error) {
	ents, err := os.ReadDir(s.path(volumesDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var out []Volume
	for _, e := range ents {
		v, err := s.Volume(e.Name())
		if errors.Is(err, ErrNoSuchVolume) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RemoveVolume deletes the volume name and its content. Whether a
// container still uses it is the caller's to check.
func (s *Store) RemoveVolume(name string) error {
	if _, err := s.Volume(name); err != nil {
		return err
	}
	// Renamed into tmp/ first: a volume half removed is never listed.
	tmp, done, err := s.tempDir("remove volume " + name)
	if err != nil {
		return err
	}
	defer done()
	if err := os.Remove(tmp); err != nil {
		return err
	}
	if err := os.Rename(s.path(volumesDir, name), tmp); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}
