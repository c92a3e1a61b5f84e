package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// The chown workload (issue 21): `chown -R` and `chmod -R` of a lower tree
// of large files, then sync, as container builds run `RUN chown -R app
// /app`. A system that copies the data up copies the whole tree; with
// metacopy=on only the metadata is copied. The systems kernel-metacopy and
// unionfuse-metacopy mount with metacopy=on (and redirect_dir=on); they run
// only when asked for: -systems kernel,kernel-metacopy,fuse-overlayfs,
// unionfuse,unionfuse-metacopy -workloads chown.

const (
	sysKernelMC = "kernel-metacopy"
	sysUnionMC  = "unionfuse-metacopy"
	// chownDir is the tree changed, in the bottom lower layer.
	chownDir = "chown"
)

// withMetacopy returns the unionfuse system d mounting with metacopy=on.
func withMetacopy(d *daemon) *daemon {
	return &daemon{name: sysUnionMC, log: d.log, argv: func(u Union) []string {
		argv := d.argv(u)
		argv[len(argv)-2] += ",metacopy=on"
		return argv
	}}
}

// prepareChown writes the chown tree: cfg.ChownFiles files of
// cfg.ChownSize bytes in all, in 20 directories, in the bottom lower.
func (ws *Workspace) prepareChown(cfg *Config) error {
	if !slices.Contains(cfg.Workloads, "chown") {
		return nil
	}
	root := filepath.Join(ws.Lowers[len(ws.Lowers)-1], chownDir)
	size := max(cfg.ChownSize/int64(cfg.ChownFiles), 1)
	for i := 0; i < cfg.ChownFiles; i++ {
		p := filepath.Join(root, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%05d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := writePattern(p, size); err != nil {
			return err
		}
	}
	return nil
}

// runChown times `chown -R` + sync and `chmod -R` + sync of the chown
// tree, each on a fresh mount, and reports the size of the upper after
// the chown (what the layer would hold).
func runChown(r *Runner, s System, rep int) (map[string]float64, error) {
	out := map[string]float64{}
	for _, step := range []struct {
		key  string
		argv []string
	}{{"chown", []string{"chown", "-R", "4321:4321"}}, {"chmod", []string{"chmod", "-R", "g+w"}}} {
		err := withMount(r, s, step.key, false, func(m *Mount, u Union) error {
			unix.Sync()
			start := time.Now()
			if err := command(step.argv[0], append(step.argv[1:], filepath.Join(m.Dir, chownDir))...)(); err != nil {
				return err
			}
			unix.Sync()
			out[step.key+"-sync"] = time.Since(start).Seconds()
			if step.key == "chown" {
				n, err := duBytes(u.Upper)
				if err != nil {
					return err
				}
				out["chown-upper"] = float64(n) / 1e6
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// duBytes is what du(1) counts below dir: the blocks of every file.
func duBytes(dir string) (int64, error) {
	var total int64
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		total += st.Blocks * 512
		return nil
	})
	return total, err
}
