package runner

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The kinds of Volume, docker's mount types.
const (
	MountBind   = "bind"
	MountVolume = "volume"
	MountTmpfs  = "tmpfs"
)

// Volume is what the container sees at Dest besides its layers: a host
// directory or file (bind), a volume of the store (volume), or a tmpfs.
type Volume struct {
	Type     string `json:",omitempty"` // MountBind ("" in old records), MountVolume or MountTmpfs
	Name     string `json:",omitempty"` // the store's volume (MountVolume)
	Source   string // the host path bound: the bind's source, the volume's _data
	Dest     string // absolute path inside the container
	ReadOnly bool
	// Options are a tmpfs's mount options (size=64m,mode=1777,exec...).
	Options string `json:",omitempty"`
	// Anonymous: the volume was made for this container (-v /path, the
	// image's VOLUME); rm -v and --rm remove it with the container.
	Anonymous bool `json:",omitempty"`
	// NoCopy: a new volume is not filled from the image (nocopy).
	NoCopy bool `json:",omitempty"`
}

// Kind returns the mount's type, MountBind for records older than Type.
func (v Volume) Kind() string {
	if v.Type == "" {
		return MountBind
	}
	return v.Type
}

// parseVolume parses -v SRC:DST[:OPTS] and -v DST. A SRC without a slash
// is a volume's name (made on first use), a bare DST an anonymous volume;
// anything else is a host path, which must exist: unlike docker, no
// daemon creates it on the caller's behalf. OPTS are ro, rw, nocopy and
// z or Z, accepted and ignored (there is no SELinux labelling here).
func parseVolume(spec string) (Volume, error) {
	parts := strings.Split(spec, ":")
	if len(parts) == 1 {
		parts = []string{"", parts[0]}
	}
	if len(parts) > 3 || parts[1] == "" {
		return Volume{}, fmt.Errorf("invalid volume %q: want [SRC:]DST[:OPTS]", spec)
	}
	v := Volume{Dest: filepath.Clean(parts[1])}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro":
				v.ReadOnly = true
			case "rw", "z", "Z":
			case "nocopy":
				v.NoCopy = true
			default:
				return Volume{}, fmt.Errorf("invalid volume %q: unknown mode %q (ro, rw, nocopy, z, Z)", spec, o)
			}
		}
	}
	if err := checkDest(spec, v.Dest); err != nil {
		return Volume{}, err
	}
	switch src := parts[0]; {
	case src == "":
		v.Type, v.Anonymous = MountVolume, true
	case !strings.Contains(src, "/") && src != "." && src != "..":
		if !nameRE().MatchString(src) {
			return Volume{}, fmt.Errorf("invalid volume %q: %q includes invalid characters for a local volume name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed; to bind a host directory give a path (./%s)", spec, src, src)
		}
		v.Type, v.Name = MountVolume, src
	default:
		if err := setBindSource(&v, spec, src); err != nil {
			return Volume{}, err
		}
	}
	return v, nil
}

// checkDest refuses a relative destination and the root.
func checkDest(spec, dest string) error {
	if !filepath.IsAbs(dest) {
		return fmt.Errorf("invalid volume %q: the destination must be an absolute path", spec)
	}
	if dest == "/" {
		return fmt.Errorf("invalid volume %q: cannot mount over the container's root", spec)
	}
	return nil
}

// setBindSource makes v a bind of the host path src, which must exist.
func setBindSource(v *Volume, spec, src string) error {
	abs, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("invalid volume %q: the source %s does not exist", spec, abs)
	}
	v.Type, v.Source = MountBind, abs
	return nil
}

// parseMount parses --mount type=bind|volume|tmpfs,source=,target=,... as
// docker: comma-separated key=value fields (CSV quoting allowed), readonly
// alone or =true|false, volume-nocopy, tmpfs-size and tmpfs-mode; a
// volume without a source is anonymous.
func parseMount(spec string) (Volume, error) {
	fields, err := csv.NewReader(strings.NewReader(spec)).Read()
	if err != nil {
		return Volume{}, fmt.Errorf("invalid mount %q: %w", spec, err)
	}
	v := Volume{Type: MountVolume}
	var src string
	var tmpfsOpts []string
	for _, f := range fields {
		key, val, hasVal := strings.Cut(f, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		flag := func() (bool, error) {
			if !hasVal {
				return true, nil
			}
			b, err := strconv.ParseBool(val)
			if err != nil {
				return false, fmt.Errorf("invalid mount %q: invalid value for %s: %q", spec, key, val)
			}
			return b, nil
		}
		switch key {
		case "type":
			if val != MountBind && val != MountVolume && val != MountTmpfs {
				return Volume{}, fmt.Errorf("invalid mount %q: unsupported type %q (bind, volume or tmpfs)", spec, val)
			}
			v.Type = val
		case "source", "src":
			src = val
		case "target", "destination", "dst":
			v.Dest = filepath.Clean(val)
		case "readonly", "ro":
			if v.ReadOnly, err = flag(); err != nil {
				return Volume{}, err
			}
		case "volume-nocopy":
			if v.NoCopy, err = flag(); err != nil {
				return Volume{}, err
			}
		case "tmpfs-size":
			tmpfsOpts = append(tmpfsOpts, "size="+val)
		case "tmpfs-mode":
			tmpfsOpts = append(tmpfsOpts, "mode="+val)
		case "bind-propagation", "consistency", "volume-driver":
			// Accepted: there is one propagation (rprivate) and one driver.
		default:
			return Volume{}, fmt.Errorf("invalid mount %q: unexpected key %q", spec, key)
		}
	}
	if v.Dest == "" || v.Dest == "." {
		return Volume{}, fmt.Errorf("invalid mount %q: target is required", spec)
	}
	if err := checkDest(spec, v.Dest); err != nil {
		return Volume{}, err
	}
	switch v.Type {
	case MountBind:
		if src == "" {
			return Volume{}, fmt.Errorf("invalid mount %q: source is required when specifying volume-driver or bind", spec)
		}
		if err := setBindSource(&v, spec, src); err != nil {
			return Volume{}, fmt.Errorf("invalid mount %q: bind source path does not exist: %s", spec, src)
		}
	case MountVolume:
		if src == "" {
			v.Anonymous = true
		} else if !nameRE().MatchString(src) {
			return Volume{}, fmt.Errorf("invalid mount %q: %q includes invalid characters for a local volume name", spec, src)
		}
		v.Name = src
	case MountTmpfs:
		if src != "" {
			return Volume{}, fmt.Errorf("invalid mount %q: source is not allowed for tmpfs mounts", spec)
		}
		v.Options = strings.Join(tmpfsOpts, ",")
	}
	return v, nil
}

// parseTmpfs parses --tmpfs DST[:OPTS], OPTS as mount(8)'s for tmpfs
// (size=64m,mode=1777,exec,ro...).
func parseTmpfs(spec string) (Volume, error) {
	dest, opts, _ := strings.Cut(spec, ":")
	v := Volume{Type: MountTmpfs, Dest: filepath.Clean(dest), Options: opts}
	if err := checkDest(spec, v.Dest); err != nil {
		return Volume{}, err
	}
	for _, o := range strings.Split(opts, ",") {
		if o == "ro" {
			v.ReadOnly = true
		}
	}
	return v, nil
}

// tmpfsFlags splits a tmpfs's options into mount flags and data. As
// docker's, a tmpfs is nosuid, nodev and noexec unless told otherwise.
func tmpfsFlags(opts string, readOnly bool) (flags uintptr, data string) {
	set := map[string]bool{"nosuid": true, "nodev": true, "noexec": true}
	var rest []string
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "":
		case "ro":
			readOnly = true
		case "rw":
		case "exec", "suid", "dev":
			delete(set, "no"+o)
		case "noexec", "nosuid", "nodev":
			set[o] = true
		default:
			rest = append(rest, o)
		}
	}
	bits := map[string]uintptr{"nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV, "noexec": unix.MS_NOEXEC}
	for o := range set {
		flags |= bits[o]
	}
	if readOnly {
		flags |= unix.MS_RDONLY
	}
	return flags, strings.Join(rest, ",")
}
