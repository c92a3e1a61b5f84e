package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The memory workloads (issue 16): how a daemon's memory grows with the
// names it is shown, and what many mounts at once cost.
//
//	hugewalk  find -printf over -huge-files names (1,000,000 by default,
//	          in huge/ of the three lowers: directories of 100 empty files,
//	          each directory in one layer), the daemon's resident size
//	          sampled at every tenth of the names and at the end
//	mounts    -mounts unions (100) mounted at once over the same lowers,
//	          each walked (find -printf over the first five groups of the
//	          walk tree, 5,250 names), then the proportional set size
//	          (PSS, /proc/PID/smaps_rollup) of all the daemons summed:
//	          what they cost together, the pages of the binary they share
//	          counted once

// hugeDir is the directory of the huge walk in every lower.
const hugeDir = "huge"

// hugeDirFiles is the number of files in each directory of huge/.
const hugeDirFiles = 100

// mountsWalkGroups is how many groups of the walk tree each of the mounts
// walks.
const mountsWalkGroups = 5

// memoryWorkloads returns the two workloads, in run order.
func memoryWorkloads() []Workload {
	noNative := func(s string) bool { return s == sysNative }
	return []Workload{
		{Name: "hugewalk", Run: runHugeWalk, Skip: noNative, Before: prepareHuge, Metrics: []Metric{
			{Key: "hugewalk-time", Title: "huge walk (1M names): find -printf", Unit: "s"},
			{Key: "hugewalk-rss-half", Title: "huge walk: daemon RSS at half the names", Unit: "MB", NoRatio: true},
			{Key: "hugewalk-rss", Title: "huge walk: daemon peak RSS", Unit: "MB", TargetAbs: 40, NoRatio: true},
		}},
		{Name: "mounts", Run: runMounts, Skip: noNative, Metrics: []Metric{
			{Key: "mounts-time", Title: "many mounts: mount all, walk each", Unit: "s"},
			{Key: "mounts-pss", Title: "many mounts: total PSS of the daemons", Unit: "MB", NoRatio: true},
		}},
	}
}

// prepareHuge writes huge/dDDDDD/fNN into the lowers, directory d into
// layer d%3, unless an earlier run of this workspace did.
func prepareHuge(r *Runner) error {
	start := time.Now()
	w := newWriter(r.ws)
	dirs := (r.cfg.HugeFiles + hugeDirFiles - 1) / hugeDirFiles
	for d := 0; d < dirs; d++ {
		n := min(hugeDirFiles, r.cfg.HugeFiles-d*hugeDirFiles)
		for f := 0; f < n; f++ {
			w.lower(d%lowerCount, fmt.Sprintf("%s/d%05d/f%02d", hugeDir, d, f), nil, false)
		}
	}
	if err := w.wait(); err != nil {
		return fmt.Errorf("prepare the huge tree: %w", err)
	}
	if r.cfg.Rootless {
		for _, l := range r.ws.Lowers {
			if err := chownTree(filepath.Join(l, hugeDir)); err != nil {
				return err
			}
		}
	}
	r.logf("prepared %d names in %s/ in %.0f s", r.cfg.HugeFiles+dirs, hugeDir, time.Since(start).Seconds())
	return dropCaches()
}

// runHugeWalk walks huge/ once on a fresh mount, reading the daemon's
// resident size (VmRSS) as find's output passes each tenth of the names,
// and its peak (VmHWM) at the end.
func runHugeWalk(r *Runner, s System, rep int) (map[string]float64, error) {
	out := map[string]float64{}
	dirs := (r.cfg.HugeFiles + hugeDirFiles - 1) / hugeDirFiles
	want := 1 + dirs + r.cfg.HugeFiles
	err := withMount(r, s, "hugewalk", false, func(m *Mount, u Union) error {
		cmd := exec.Command("find", filepath.Join(m.Dir, hugeDir), "-printf", "%i %s %m\n")
		asWorkloadUser(cmd)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		pipe, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return err
		}
		sc := bufio.NewScanner(pipe)
		n := 0
		var samples []string
		for sc.Scan() {
			n++
			if m.PID != 0 && n%(want/10+1) == 0 {
				rss, err := procStatusKB(m.PID, "VmRSS")
				if err != nil {
					return err
				}
				samples = append(samples, fmt.Sprintf("%d:%.1f", n, float64(rss)/1e3))
				if n/(want/10+1) == 5 {
					out["hugewalk-rss-half"] = float64(rss) / 1e3
				}
			}
		}
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("find: %v: %s", err, firstLine(stderr.String()))
		}
		out["hugewalk-time"] = time.Since(start).Seconds()
		if n != want {
			return fmt.Errorf("the huge walk listed %d names, want %d", n, want)
		}
		if m.PID != 0 {
			hwm, err := procStatusKB(m.PID, "VmHWM")
			if err != nil {
				return err
			}
			out["hugewalk-rss"] = float64(hwm) / 1e3
			r.logf("hugewalk %s: VmRSS (names:MB) %s; VmHWM %.1f MB", s.Name(), strings.Join(samples, " "), float64(hwm)/1e3)
		}
		return nil
	})
	return out, err
}

// runMounts mounts -mounts unions of s at once, walks part of the walk
// tree in each, sums the daemons' PSS while all are mounted, and
// unmounts them all.
func runMounts(r *Runner, s System, rep int) (map[string]float64, error) {
	out := map[string]float64{}
	groups := min(mountsWalkGroups, (r.cfg.WalkDirs+49)/50)
	var mounts []*Mount
	defer func() {
		for _, m := range mounts {
			m.Unmount()
		}
	}()
	start := time.Now()
	for i := 0; i < r.cfg.Mounts; i++ {
		m, _, err := r.mount(s, fmt.Sprintf("mounts%03d", i), false)
		if err != nil {
			return out, fmt.Errorf("mount %d of %d: %w", i+1, r.cfg.Mounts, err)
		}
		mounts = append(mounts, m)
		args := []string{}
		for g := 0; g < groups; g++ {
			args = append(args, filepath.Join(m.Dir, walkDir, fmt.Sprintf("g%03d", g)))
		}
		if err := command("find", append(args, "-printf", "%i %s %m\n")...)(); err != nil {
			return out, err
		}
	}
	out["mounts-time"] = time.Since(start).Seconds()
	var pss int64
	counted := map[int]bool{} // one union server serves them all
	for _, m := range mounts {
		if m.PID == 0 || counted[m.PID] {
			continue
		}
		counted[m.PID] = true
		kb, err := pssKB(m.PID)
		if err != nil {
			return out, err
		}
		pss += kb
	}
	if pss > 0 {
		out["mounts-pss"] = float64(pss) / 1e3
	}
	var errs []error
	for _, m := range mounts {
		errs = append(errs, m.Unmount())
	}
	mounts = nil
	return out, errors.Join(errs...)
}

// procStatusKB returns the field (VmRSS, VmHWM) of /proc/PID/status in kB.
func procStatusKB(pid int, field string) (int64, error) {
	return procFieldKB(fmt.Sprintf("/proc/%d/status", pid), field+":")
}

// pssKB returns the proportional set size of process pid in kB.
func pssKB(pid int) (int64, error) {
	return procFieldKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
}

// procFieldKB returns the value of the "NAME: N kB" line of a /proc file.
func procFieldKB(path, name string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s in %s", name, path)
}
