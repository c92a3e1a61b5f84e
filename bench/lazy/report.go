package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/unionfuse/unionfuse/bench/internal/tool"
)

// results is what one run measured.
type results struct {
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Reps     int       `json:"reps"`
	Image    string    `json:"image"`
	RateMBps float64   `json:"rate_mb_per_s"`
	Version  string    `json:"version"`
	CPUs     int       `json:"cpus"`
	// Values are op -> tool -> repetitions.
	Values map[string]map[string][]sample `json:"values"`
}

// sample is one repetition: the time of the pull, the time until the
// container's command ended (pull included), and the bytes that crossed
// the proxy.
type sample struct {
	PullSeconds float64 `json:"pull_seconds"`
	Seconds     float64 `json:"seconds"`
	Bytes       int64   `json:"bytes"`
}

func newResults(cfg *config, version string) *results {
	return &results{
		Started:  time.Now().UTC(),
		Reps:     cfg.Reps,
		Image:    fmt.Sprintf("%d layers, %d MB in %d files, eStargz", cfg.Layers, cfg.Size/1e6, cfg.Files),
		RateMBps: float64(cfg.Rate) / 1e6,
		Version:  version,
		CPUs:     runtime.NumCPU(),
		Values:   map[string]map[string][]sample{},
	}
}

func (r *results) add(op, tool string, pull, total time.Duration, bytes int64) {
	if r.Values[op] == nil {
		r.Values[op] = map[string][]sample{}
	}
	r.Values[op][tool] = append(r.Values[op][tool], sample{pull.Seconds(), total.Seconds(), bytes})
}

// median returns the median, minimum and maximum of f over ss.
func median(ss []sample, f func(sample) float64) (med, lo, hi float64) {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	return tool.Median(v)
}

func secs(s sample) float64     { return s.Seconds }
func pullSecs(s sample) float64 { return s.PullSeconds }
func mb(s sample) float64       { return float64(s.Bytes) / 1e6 }

// describe says what each measurement is.
var describe = map[string]string{
	opFirst: "pull, then run --rm IMG cat " + smallFile + ": until it ends",
	opWhole: "pull, then run --rm IMG reading every file: until it ends",
}

// table writes the results as a markdown table and the targets.
func (r *results) table(w io.Writer) {
	fmt.Fprintln(w, "| measurement | path | time (median) | min–max | of which pull | MB moved |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|")
	for _, op := range []string{opFirst, opWhole} {
		for i, tool := range []string{toolLazy, toolFull, toolPodman} {
			ss := r.Values[op][tool]
			if len(ss) == 0 {
				continue
			}
			med, lo, hi := median(ss, secs)
			pull, _, _ := median(ss, pullSecs)
			moved, _, _ := median(ss, mb)
			label := ""
			if i == 0 {
				label = op + ": " + describe[op]
			}
			fmt.Fprintf(w, "| %s | %s | %.2f s | %.2f–%.2f s | %.2f s | %.0f |\n", label, tool, med, lo, hi, pull, moved)
		}
	}
	first := func(tool string) float64 { m, _, _ := median(r.Values[opFirst][tool], secs); return m }
	whole := func(tool string) float64 { m, _, _ := median(r.Values[opWhole][tool], secs); return m }
	fmt.Fprintln(w)
	if l := first(toolLazy); l > 0 {
		fmt.Fprintf(w, "- First output, lazy: %.1fx faster than --lazy=false (target: at least 10x)", first(toolFull)/l)
		if p := first(toolPodman); p > 0 {
			fmt.Fprintf(w, ", %.1fx faster than podman", p/l)
		}
		fmt.Fprintln(w, ".")
	}
	if f := whole(toolFull); f > 0 {
		fmt.Fprintf(w, "- Whole image read lazily: %.2fx the time of --lazy=false (target: at most 1.3x).\n", whole(toolLazy)/f)
	}
}

// header writes what was measured where.
func (r *results) header(w io.Writer) {
	fmt.Fprintf(w, "Image: %s; downloads held to %.0f MB/s by the proxy; %d repetition(s), medians; %s; %d CPUs; %s, took %s.\n\n",
		r.Image, r.RateMBps, r.Reps, r.Version, r.CPUs, r.Started.Format(time.DateTime), r.Duration)
}

// write prints the table and writes lazy.md and lazy.json to dir.
func (r *results) write(dir string, out io.Writer) error {
	r.header(out)
	r.table(out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	md, err := os.Create(filepath.Join(dir, "lazy.md"))
	if err != nil {
		return err
	}
	fmt.Fprintln(md, "# Lazy pulls (go run ./bench/lazy)")
	fmt.Fprintln(md)
	r.header(md)
	r.table(md)
	if err := md.Close(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nresults: %s/lazy.{md,json}\n", dir)
	return os.WriteFile(filepath.Join(dir, "lazy.json"), b, 0o644)
}
