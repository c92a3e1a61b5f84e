package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/unionfuse/unionfuse/bench/internal/tool"
)

// The measurements, in the order of the table.
const (
	opPull      = "pull"
	opPush      = "push"
	opPushLocal = "push local"
	opPullAgain = "pull again"
)

var ops = []string{opPull, opPush, opPushLocal, opPullAgain}

// reference is the measurement of podman's an op is compared with.
var reference = map[string]string{opPushLocal: opPush}

// describe says what each measurement is, and the target for unionfuse
// as a ratio to podman's time (0: none).
var describe = map[string]struct {
	what   string
	target float64
}{
	opPull:      {"pull of the image into an empty store", 0.8},
	opPush:      {"push of the image to an empty registry", 1.0},
	opPushLocal: {"push of the image with its layers stored uncompressed (as made by build, commit, load): compressed as it is pushed; podman's storage is always so", 0},
	opPullAgain: {"pull of the image plus a new layer, the image present", 0},
}

// results is what one run measured.
type results struct {
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Reps     int       `json:"reps"`
	// Image describes the image: layers, sizes.
	Image   string            `json:"image"`
	Machine map[string]string `json:"machine"`
	// Values are op -> tool -> repetitions.
	Values map[string]map[string][]sample `json:"values"`
	order  []string
}

// sample is one repetition: the command's time, the time until a sync
// after it, the CPU time it used, and the bytes that crossed the proxy.
type sample struct {
	Seconds       float64 `json:"seconds"`
	SyncedSeconds float64 `json:"synced_seconds"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	Bytes         int64   `json:"bytes"`
}

func newResults(cfg *config, compressed, extra int64, version string) *results {
	return &results{
		Started: time.Now().UTC(),
		Reps:    cfg.Reps,
		Image: fmt.Sprintf("%d layers of %d MiB (half random, half text files): %d MiB, %.0f MB gzip-compressed; the second image adds a layer of %d MiB, %.1f MB compressed",
			cfg.Layers, cfg.LayerSize>>20, int64(cfg.Layers)*cfg.LayerSize>>20, float64(compressed)/1e6, cfg.Extra>>20, float64(extra)/1e6),
		Machine: map[string]string{
			"kernel":          tool.Output("uname", "-r"),
			"cpu":             cpuModel(),
			"cores":           fmt.Sprint(runtime.NumCPU()),
			"unionfuse":       version,
			"podman":          tool.Output("podman", "--version"),
			"skopeo":          tool.Output("skopeo", "--version"),
			"docker-registry": tool.Output("docker-registry", "--version"),
			"go":              runtime.Version(),
			"load at start":   loadAverage(),
		},
		Values: map[string]map[string][]sample{},
	}
}

func (r *results) add(op, tool string, d, synced, cpu time.Duration, bytes int64) {
	if r.Values[op] == nil {
		r.Values[op] = map[string][]sample{}
	}
	if !slices.Contains(r.order, tool) {
		r.order = append(r.order, tool)
	}
	r.Values[op][tool] = append(r.Values[op][tool], sample{d.Seconds(), synced.Seconds(), cpu.Seconds(), bytes})
}

// median returns the median and range of f over samples.
func median(ss []sample, f func(sample) float64) (med, lo, hi float64) {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	return tool.Median(v)
}

func secs(s sample) float64   { return s.Seconds }
func synced(s sample) float64 { return s.SyncedSeconds }
func cpu(s sample) float64    { return s.CPUSeconds }
func mb(s sample) float64     { return float64(s.Bytes) / 1e6 }

// table writes the Markdown table.
func (r *results) table(w io.Writer) {
	fmt.Fprintln(w, "| measurement | tool | time (median) | min–max | ratio to podman | time + sync | CPU time | MB moved | target |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|---|")
	tools := append([]string{}, r.order...)
	sort.SliceStable(tools, func(i, j int) bool { return toolRank(tools[i]) < toolRank(tools[j]) })
	for _, op := range ops {
		refOp := op
		if o, ok := reference[op]; ok {
			refOp = o
		}
		ref, _, _ := median(r.Values[refOp]["podman"], secs)
		for i, tool := range tools {
			ss := r.Values[op][tool]
			if len(ss) == 0 {
				continue
			}
			med, lo, hi := median(ss, secs)
			syncMed, _, _ := median(ss, synced)
			cpuMed, _, _ := median(ss, cpu)
			moved, _, _ := median(ss, mb)
			label := ""
			if i == 0 {
				label = describe[op].what
			}
			ratio := med / ref
			target := ""
			if t := describe[op].target; t > 0 && tool == "unionfuse" && !math.IsNaN(ratio) {
				target = fmt.Sprintf("≤%.1fx ", t) + map[bool]string{true: "ok", false: "MISSED"}[ratio <= t]
			}
			fmt.Fprintf(w, "| %s | %s | %.2f s | %.2f–%.2f s | %s | %.2f s | %.2f s | %.0f | %s |\n",
				label, tool, med, lo, hi, ratioString(ratio), syncMed, cpuMed, moved, target)
		}
	}
}

func toolRank(t string) int {
	return slices.Index([]string{"unionfuse", "unionfuse before", "podman", "skopeo copy"}, t)
}

func ratioString(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "–"
	}
	return fmt.Sprintf("%.2fx", r)
}

// header writes what was measured where.
func (r *results) header(w io.Writer) {
	fmt.Fprintf(w, "Run of %s, %d repetition(s), %s of measuring.\n\n", r.Started.Format("2006-01-02 15:04 UTC"), r.Reps, r.Duration)
	fmt.Fprintf(w, "- image: %s\n", r.Image)
	keys := make([]string, 0, len(r.Machine))
	for k := range r.Machine {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+": "+r.Machine[k])
	}
	fmt.Fprintf(w, "- %s\n\n", strings.Join(parts, "; "))
}

// write prints the table and writes registry.md and registry.json to dir.
func (r *results) write(dir string, out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 0, 1, ' ', 0)
	r.header(tw)
	r.table(tw)
	tw.Flush()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "registry.md"))
	if err != nil {
		return err
	}
	r.header(f)
	r.table(f)
	if err := f.Close(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "registry.json"), append(b, '\n'), 0o644)
}

// loadAverage returns the 1-minute load average.
func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
