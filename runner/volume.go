package runner

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Volume is a host directory or file bind-mounted into the container.
type Volume struct {
	Source   string // absolute path on the host
	Dest     string // absolute path inside the container
	ReadOnly bool
}

// parseVolume parses -v SRC:DST[:ro|rw]. SRC must exist: unlike docker,
// no daemon creates it on the caller's behalf.
func parseVolume(spec string) (Volume, error) {
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Volume{}, fmt.Errorf("invalid volume %q: want SRC:DST[:ro]", spec)
	}
	v := Volume{Dest: filepath.Clean(parts[1])}
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			v.ReadOnly = true
		case "rw":
		default:
			return Volume{}, fmt.Errorf("invalid volume %q: unknown mode %q (ro or rw)", spec, parts[2])
		}
	}
	if !filepath.IsAbs(v.Dest) {
		return Volume{}, fmt.Errorf("invalid volume %q: the destination must be an absolute path", spec)
	}
	if v.Dest == "/" {
		return Volume{}, fmt.Errorf("invalid volume %q: cannot mount over the container's root", spec)
	}
	src, err := filepath.Abs(parts[0])
	if err != nil {
		return Volume{}, err
	}
	if _, err := os.Stat(src); err != nil {
		return Volume{}, fmt.Errorf("invalid volume %q: the source %s does not exist", spec, src)
	}
	v.Source = src
	return v, nil
}
