package runner

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/go-archive"
	"github.com/unionfuse/unionfuse/cowcache"
	"golang.org/x/sys/unix"
)

// Volumes of a container, as docker's daemon does them:
//
//   - Create makes the named volumes that do not exist yet and an
//     anonymous volume (a random 64-hex name, labelled
//     cowcache.AnonymousLabel) for -v /path, --mount without a source and
//     every VOLUME of the image no other mount covers.
//   - The first start fills each empty volume with what the image has at
//     its path (fillVolumes), unless nocopy: the container's root is
//     mounted then, so the union of its layers is what is copied.
//   - The init binds each volume's _data like any bind mount, shallowest
//     destination first.
//   - rm -v and --rm remove the container's anonymous volumes; a volume
//     any container names cannot be removed.

// addMounts adds the -v, --mount and --tmpfs of o and the image's VOLUMEs
// to cfg, refusing two mounts on one path.
func addMounts(cfg *Config, o Options, imageVolumes map[string]struct{}) error {
	seen := map[string]bool{}
	add := func(v Volume) error {
		if seen[v.Dest] {
			return fmt.Errorf("duplicate mount point: %s", v.Dest)
		}
		seen[v.Dest] = true
		cfg.Volumes = append(cfg.Volumes, v)
		return nil
	}
	for _, list := range []struct {
		specs []string
		parse func(string) (Volume, error)
	}{{o.Volumes, parseVolume}, {o.Mounts, parseMount}, {o.Tmpfs, parseTmpfs}} {
		for _, spec := range list.specs {
			v, err := list.parse(spec)
			if err != nil {
				return err
			}
			if err := add(v); err != nil {
				return err
			}
		}
	}
	var paths []string
	for p := range imageVolumes {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if p = filepath.Clean(p); !seen[p] && filepath.IsAbs(p) && p != "/" {
			add(Volume{Type: MountVolume, Dest: p, Anonymous: true})
		}
	}
	// Shallow first: a mount on /a/b lands in the one on /a.
	sort.SliceStable(cfg.Volumes, func(i, j int) bool {
		return strings.Count(cfg.Volumes[i].Dest, "/") < strings.Count(cfg.Volumes[j].Dest, "/")
	})
	return nil
}

// makeVolumes creates the store's volumes cfg names and are missing, and
// points each volume mount at its _data. On error it removes the
// anonymous volumes it made.
func (r *Runner) makeVolumes(cfg *Config) error {
	for i := range cfg.Volumes {
		v := &cfg.Volumes[i]
		if v.Kind() != MountVolume {
			continue
		}
		labels := map[string]string{}
		if v.Anonymous {
			v.Name = newID()
			labels[cowcache.AnonymousLabel] = ""
		}
		vol, _, err := r.store.CreateVolume(v.Name, labels)
		if err != nil {
			r.removeAnonymousVolumes(cfg.Volumes[:i])
			return err
		}
		v.Source = vol.Mountpoint
	}
	return nil
}

// removeAnonymousVolumes removes the anonymous volumes of vols, as rm -v
// does; one another container uses too is kept.
func (r *Runner) removeAnonymousVolumes(vols []Volume) error {
	var errs []error
	for _, v := range vols {
		if v.Kind() != MountVolume || !v.Anonymous || v.Name == "" {
			continue
		}
		if users, _ := r.VolumeUsers(); len(users[v.Name]) > 0 {
			continue
		}
		if err := r.store.RemoveVolume(v.Name); err != nil && !errors.Is(err, cowcache.ErrNoSuchVolume) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RemoveVolumes removes c's anonymous volumes (rm -v), once c is gone.
func (r *Runner) RemoveVolumes(c *Container) error {
	return r.removeAnonymousVolumes(c.Config.Volumes)
}

// VolumeUsers returns the ids of the containers that mount each volume,
// by the volume's name.
func (r *Runner) VolumeUsers() (map[string][]string, error) {
	all, err := r.List()
	if err != nil {
		return nil, err
	}
	users := map[string][]string{}
	for _, c := range all {
		for _, v := range c.Config.Volumes {
			if v.Kind() == MountVolume && v.Name != "" {
				users[v.Name] = append(users[v.Name], c.ID)
			}
		}
	}
	return users, nil
}

// ValidVolumeName reports whether name can name a volume (docker's rule,
// the one for container names).
func ValidVolumeName(name string) bool { return nameRE().MatchString(name) }

// RemoveVolume removes the volume name unless a container uses it (with
// docker's message); force only makes a missing volume no error, as
// docker volume rm -f.
func (r *Runner) RemoveVolume(name string, force bool) error {
	users, err := r.VolumeUsers()
	if err != nil {
		return err
	}
	if ids := users[name]; len(ids) > 0 {
		return fmt.Errorf("remove %s: volume is in use - [%s]", name, strings.Join(ids, ", "))
	}
	err = r.store.RemoveVolume(name)
	if force && errors.Is(err, cowcache.ErrNoSuchVolume) {
		return nil
	}
	if errors.Is(err, cowcache.ErrNoSuchVolume) {
		return fmt.Errorf("get %s: no such volume", name)
	}
	return err
}

// PruneVolumes removes the volumes no container uses: only the anonymous
// ones unless all (docker 23's volume prune and -a). It returns the names
// removed and the bytes freed.
func (r *Runner) PruneVolumes(all bool) ([]string, int64, error) {
	vols, err := r.store.Volumes()
	if err != nil {
		return nil, 0, err
	}
	used, err := r.VolumeUsers()
	if err != nil {
		return nil, 0, err
	}
	var names []string
	var freed int64
	for _, v := range vols {
		if len(used[v.Name]) > 0 || (!all && !v.Anonymous()) {
			continue
		}
		n, _ := cowcache.DirSize(v.Mountpoint)
		if err := r.store.RemoveVolume(v.Name); err != nil {
			return names, freed, err
		}
		names = append(names, v.Name)
		freed += n
	}
	return names, freed, nil
}

// fillVolumes copies, at the container's first start, what the image
// has at each volume's path into the volume when it is empty (docker's
// copy of image content into a new volume). root is the container's
// mounted root; a path the image lacks or that is no directory is
// skipped.
func fillVolumes(c *Container, root string) error {
	if c.State.Status != StatusCreated {
		return nil
	}
	for _, v := range c.Config.Volumes {
		if v.Kind() != MountVolume || v.NoCopy {
			continue
		}
		src, err := securejoin.SecureJoin(root, v.Dest)
		if err != nil {
			return err
		}
		if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
			continue
		}
		if empty, err := isEmptyDir(v.Source); err != nil || !empty {
			continue
		}
		if err := copyTree(src, v.Source); err != nil {
			return fmt.Errorf("fill volume %s from the image's %s: %w", v.Name, v.Dest, err)
		}
	}
	return nil
}

// isEmptyDir reports whether dir has no entries.
func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

// copyTree copies src's content into the empty dst with modes, times and,
// where the user namespace maps them, owners; the owners that cannot be
// set (rootless without subordinate ids) are left as the caller's.
func copyTree(src, dst string) error {
	try := func(noLchown bool) error {
		rc, err := archive.TarWithOptions(src, &archive.TarOptions{})
		if err != nil {
			return err
		}
		defer rc.Close()
		return archive.Untar(rc, dst, &archive.TarOptions{NoLchown: noLchown, NoOverwriteDirNonDir: true})
	}
	if err := try(false); err == nil {
		matchDir(src, dst)
		return nil
	}
	ents, _ := os.ReadDir(dst)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(dst, e.Name()))
	}
	if err := try(true); err != nil {
		return err
	}
	matchDir(src, dst)
	return nil
}

// matchDir gives dst src's mode and, where it can, owner (a volume on
// /var/lib/db owned by the image's db user stays the user's).
func matchDir(src, dst string) {
	var st unix.Stat_t
	if unix.Lstat(src, &st) != nil {
		return
	}
	os.Lchown(dst, int(st.Uid), int(st.Gid))
	unix.Chmod(dst, st.Mode&0o7777)
}
