package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"github.com/unionfuse/unionfuse/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// Num is a float64 that is written to JSON as null when it is NaN
// (a missing value).
type Num float64

// MarshalJSON writes NaN and infinities as null.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', 6, 64), nil
}

// UnmarshalJSON reads null as NaN.
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(nan)
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	*n = Num(f)
	return err
}

// loadResults reads a results JSON written by an earlier run, so its
// reports can be written again (-report).
func loadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	res := &Results{}
	if err := json.Unmarshal(b, res); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	res.index = map[string]*MetricResult{}
	for _, mr := range res.Metrics {
		res.index[mr.Key] = mr
	}
	return res, nil
}

// Results is everything one run measured, as written to JSON.
type Results struct {
	// Started is when the run began; Duration how long it took.
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	// Config holds the flags of the run.
	Config *Config `json:"config"`
	// Machine describes where it ran.
	Machine Machine `json:"machine"`
	// Metrics holds the figures, in run order.
	Metrics []*MetricResult `json:"metrics"`
	// Notes are remarks about the whole run.
	Notes []string `json:"notes,omitempty"`

	index map[string]*MetricResult
}

// MetricResult is one metric on every system.
type MetricResult struct {
	Metric
	// Systems are in run order.
	Systems []*SystemResult `json:"systems"`
}

// SystemResult is one metric on one system.
type SystemResult struct {
	// System is the system's name.
	System string `json:"system"`
	// Values are the repetitions in order; null where one failed.
	Values []Num `json:"values"`
	// Median, Min and Max summarize Values.
	Median Num `json:"median"`
	Min    Num `json:"min"`
	Max    Num `json:"max"`
	// Ratio is Median divided by the kernel's median (Ratio).
	Ratio Num `json:"ratio_to_kernel"`
	// Slowdown, SlowdownMin and SlowdownMax are how many times slower than
	// the kernel's median the median, best and worst repetitions were
	// (Slowdown): what the plot shows.
	Slowdown    Num `json:"slowdown"`
	SlowdownMin Num `json:"slowdown_min"`
	SlowdownMax Num `json:"slowdown_max"`
	// Target is issue 4's target for unionfuse ("≤1.5x", "≤5 ms"), shown
	// on the unionfuse row only; Met says whether the median meets it.
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	// Notes are remarks about this system's runs (failures, warnings).
	Notes []string `json:"notes,omitempty"`
}

// Machine describes the machine and the versions of what was measured.
type Machine struct {
	Kernel        string `json:"kernel"`
	CPU           string `json:"cpu"`
	Cores         int    `json:"cores"`
	MemoryGB      int    `json:"memory_gb"`
	Disk          string `json:"disk"`
	Go            string `json:"go"`
	GoFuse        string `json:"go_fuse"`
	Unionfuse     string `json:"unionfuse"`
	FuseOverlayfs string `json:"fuse_overlayfs"`
	Fio           string `json:"fio"`
	Tar           string `json:"tar"`
	// LoadStart and LoadEnd are /proc/loadavg at the start and the end of
	// the run: other work on the machine makes the figures noisier.
	LoadStart string `json:"load_start"`
	LoadEnd   string `json:"load_end,omitempty"`
}

func newResults(cfg *Config, m Machine) *Results {
	return &Results{Started: time.Now(), Config: cfg, Machine: m, index: map[string]*MetricResult{}}
}

func (res *Results) addMetric(m Metric) {
	mr := &MetricResult{Metric: m}
	for _, s := range res.Config.Systems {
		vals := make([]Num, res.Config.Reps)
		for i := range vals {
			vals[i] = Num(nan)
		}
		mr.Systems = append(mr.Systems, &SystemResult{System: s, Values: vals})
	}
	res.Metrics = append(res.Metrics, mr)
	res.index[m.Key] = mr
}

func (res *Results) system(key, system string) *SystemResult {
	if mr := res.index[key]; mr != nil {
		for _, s := range mr.Systems {
			if s.System == system {
				return s
			}
		}
	}
	return nil
}

func (res *Results) add(key, system string, rep int, v float64) {
	if s := res.system(key, system); s != nil && rep < len(s.Values) {
		s.Values[rep] = Num(v)
	}
}

func (res *Results) note(key, system, text string) {
	if s := res.system(key, system); s != nil {
		s.Notes = append(s.Notes, text)
	}
}

// finish computes the summaries, the ratios to the kernel and the targets.
func (res *Results) finish(d time.Duration) {
	res.Duration = d.Round(time.Second).String()
	res.Machine.LoadEnd = loadAverage()
	for _, mr := range res.Metrics {
		for _, s := range mr.Systems {
			v := make([]float64, len(s.Values))
			for i, x := range s.Values {
				v[i] = float64(x)
			}
			sum := Summarize(v)
			s.Median, s.Min, s.Max = Num(sum.Median), Num(sum.Min), Num(sum.Max)
		}
		ref := nan
		if k := res.system(mr.Key, refSystem); k != nil {
			ref = float64(k.Median)
		}
		for _, s := range mr.Systems {
			s.Ratio, s.Slowdown, s.SlowdownMin, s.SlowdownMax = Num(nan), Num(nan), Num(nan), Num(nan)
			if !mr.NoRatio {
				s.Ratio = Num(Ratio(float64(s.Median), ref))
				s.Slowdown = Num(Slowdown(float64(s.Median), ref, mr.HigherIsBetter))
				lo, hi := Slowdown(float64(s.Min), ref, mr.HigherIsBetter), Slowdown(float64(s.Max), ref, mr.HigherIsBetter)
				s.SlowdownMin, s.SlowdownMax = Num(math.Min(lo, hi)), Num(math.Max(lo, hi))
			}
			if s.System == sysUnion || s.System == sysUnionNoPT {
				s.Target, s.Met = target(mr.Metric, float64(s.Median), float64(s.Ratio))
			}
		}
	}
}

// target returns the target of m as text and whether median (ratio) meets
// it; nil when there is no target or no value.
func target(m Metric, median, ratio float64) (string, *bool) {
	var text string
	var met bool
	switch {
	case m.TargetRatio > 0 && m.HigherIsBetter:
		text, met = fmt.Sprintf("≥%gx", m.TargetRatio), ratio >= m.TargetRatio
	case m.TargetRatio > 0:
		text, met = fmt.Sprintf("≤%gx", m.TargetRatio), ratio <= m.TargetRatio
	case m.TargetAbs > 0:
		text, met = fmt.Sprintf("≤%g %s", m.TargetAbs, m.Unit), median <= m.TargetAbs
		ratio = median
	default:
		return "", nil
	}
	if math.IsNaN(ratio) {
		return text, nil
	}
	return text, &met
}

// formatValue writes v with its unit, with a precision that suits it.
func formatValue(v float64, unit string) string {
	f, u := displayUnit(v, unit)
	return formatNumber(v*f, u) + " " + u
}

// displayUnit returns the factor and unit to show a value like v in:
// seconds under 0.1 as milliseconds.
func displayUnit(v float64, unit string) (float64, string) {
	if unit == "s" && math.Abs(v) < 0.1 {
		return 1000, "ms"
	}
	return 1, unit
}

func formatNumber(v float64, unit string) string {
	if math.IsNaN(v) {
		return "–"
	}
	switch unit {
	case "IOPS":
		return fmt.Sprintf("%.0fk", v/1000)
	case "MB":
		return fmt.Sprintf("%.1f", v)
	}
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// formatRatio writes a ratio with two decimals, or "<0.01x".
func formatRatio(v float64) string {
	if v < 0.01 {
		return "<0.01x"
	}
	return fmt.Sprintf("%.2fx", v)
}

// row is one line of the table, as text.
type row struct {
	title, system, median, span, ratio, target string
}

// rows returns the table's lines: one per metric and system.
func (res *Results) rows() []row {
	var out []row
	for _, mr := range res.Metrics {
		for i, s := range mr.Systems {
			r := row{system: s.System, median: "–", span: "–", ratio: "–"}
			if i == 0 {
				r.title = mr.Title
			}
			if s.Median == s.Median { // not NaN
				f, u := displayUnit(float64(s.Median), mr.Unit)
				r.median = formatNumber(f*float64(s.Median), u) + " " + u
				r.span = formatNumber(f*float64(s.Min), u) + "–" + formatNumber(f*float64(s.Max), u) + " " + u
			}
			if s.Ratio == s.Ratio {
				r.ratio = formatRatio(float64(s.Ratio))
			}
			if s.Target != "" {
				r.target = s.Target
				if s.Met != nil && *s.Met {
					r.target += " ok"
				} else if s.Met != nil {
					r.target += " MISSED"
				}
			}
			if len(s.Notes) > 0 {
				r.target = strings.TrimSpace(r.target + " (" + strings.Join(s.Notes, "; ") + ")")
			}
			out = append(out, r)
		}
	}
	return out
}

// legend explains the ratio column.
const legend = "ratio = median / kernel overlayfs median, same run. Times (s, ms) and sizes (MB): lower is better; GB/s and IOPS: higher is better. Target: issue 4's target for unionfuse."

// writeTable prints the table with text/tabwriter.
func (res *Results) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tsystem\tmedian\tmin–max\tratio to kernel\ttarget")
	for _, r := range res.rows() {
		if r.title != "" {
			fmt.Fprintln(tw, "\t\t\t\t\t")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.title, r.system, r.median, r.span, r.ratio, r.target)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%s\n", legend)
	return err
}

// writeMarkdown writes the table as Markdown, for docs/benchmarks.md.
func (res *Results) writeMarkdown(w io.Writer) error {
	fmt.Fprintln(w, "| workload | system | median | min–max | ratio to kernel | target |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|---|")
	for _, r := range res.rows() {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.title, r.system, r.median, r.span, r.ratio, r.target)
	}
	_, err := fmt.Fprintf(w, "\n%s\n", legend)
	return err
}

// writeTSV writes one line per metric and system, with every repetition.
func (res *Results) writeTSV(w io.Writer) error {
	bw := bufio.NewWriter(w)
	cols := []string{"metric", "title", "unit", "higher_is_better", "system", "median", "min", "max", "ratio_to_kernel"}
	for i := 0; i < res.Config.Reps; i++ {
		cols = append(cols, fmt.Sprintf("rep%d", i+1))
	}
	fmt.Fprintln(bw, strings.Join(cols, "\t"))
	f := func(n Num) string {
		if n != n {
			return ""
		}
		return strconv.FormatFloat(float64(n), 'g', 6, 64)
	}
	for _, mr := range res.Metrics {
		for _, s := range mr.Systems {
			line := []string{mr.Key, mr.Title, mr.Unit, strconv.FormatBool(mr.HigherIsBetter), s.System, f(s.Median), f(s.Min), f(s.Max), f(s.Ratio)}
			for _, v := range s.Values {
				line = append(line, f(v))
			}
			fmt.Fprintln(bw, strings.Join(line, "\t"))
		}
	}
	return bw.Flush()
}

// writeReports prints the table to out and writes PREFIX.{json,tsv,txt,md,
// svg,png} to cfg.Out, where PREFIX is "latest" for a full run with the
// default selection, "rootless" for one without root, "quick" (or
// "quick-rootless") for -quick and "partial" otherwise. A copy of
// the JSON goes to cfg.Out/history/.
func writeReports(cfg *Config, res *Results, out io.Writer) error {
	if cfg.Report != "" {
		// Rewrite the reports of an earlier run with its own selection.
		cfg.Quick, cfg.Workloads, cfg.Systems = res.Config.Quick, res.Config.Workloads, res.Config.Systems
		cfg.Reps, cfg.Rootless = res.Config.Reps, res.Config.Rootless
	}
	fmt.Fprintln(out)
	if err := res.writeTable(out); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(cfg.Out, "history"), 0o755); err != nil {
		return err
	}
	prefix := "latest"
	switch {
	case cfg.Quick && cfg.Rootless:
		prefix = "quick-rootless"
	case cfg.Quick:
		prefix = "quick"
	case cfg.Rootless:
		prefix = "rootless"
	case slices.Contains(cfg.Systems, sysUnionNoPT):
		prefix = "nopassthrough"
	case len(cfg.Workloads) != len(allWorkloads) || len(cfg.Systems) != len(allSystems):
		prefix = "partial"
	}
	base := filepath.Join(cfg.Out, prefix)
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	js = append(js, '\n')
	writers := []struct {
		path string
		fn   func(io.Writer) error
	}{
		{base + ".json", func(w io.Writer) error { _, err := w.Write(js); return err }},
		{filepath.Join(cfg.Out, "history", res.Started.Format("20060102-150405")+"-"+prefix+".json"), func(w io.Writer) error { _, err := w.Write(js); return err }},
		{base + ".tsv", res.writeTSV},
		{base + ".txt", func(w io.Writer) error { res.writeHeader(w); return res.writeTable(w) }},
		{base + ".md", res.writeMarkdown},
	}
	for _, wr := range writers {
		if err := atomicfile.Write(wr.path, 0o644, wr.fn); err != nil {
			return err
		}
	}
	plots, err := writePlots(res, base)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nresults: %s.{json,tsv,txt,md}\nplot:    %s\n", base, strings.Join(plots, " "))
	return nil
}

// writeCombined writes the runs named by cfg.Combine (one as root, one
// without root) as cfg.Out/all.md, all.svg and all.png: each run's table
// under a heading, and its plot under a caption, one above the other.
func writeCombined(cfg *Config, out io.Writer) error {
	paths := strings.Split(cfg.Combine, ",")
	var runs []*Results
	var captions []string
	for _, p := range paths {
		res, err := loadResults(p)
		if err != nil {
			return err
		}
		runs = append(runs, res)
		captions = append(captions, runCaption(res))
	}
	base := filepath.Join(cfg.Out, "all")
	if err := atomicfile.Write(base+".md", 0o644, func(w io.Writer) error {
		for i, res := range runs {
			fmt.Fprintf(w, "## %s\n\n", captions[i])
			if err := res.writeMarkdown(w); err != nil {
				return err
			}
			fmt.Fprintln(w)
		}
		return nil
	}); err != nil {
		return err
	}
	plots, err := writeCombinedPlots(runs, captions, base)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "results: %s.md\nplot:    %s\n", base, strings.Join(plots, " "))
	return nil
}

// runCaption says how and when res was measured: as root or not, the
// date, the repetitions.
func runCaption(res *Results) string {
	how := "As root"
	if res.Config.Rootless {
		how = "Without root (-rootless)"
	}
	return fmt.Sprintf("%s: run of %s, %d repetitions, unionfuse %s", how, res.Started.Format("2006-01-02 15:04 MST"), res.Config.Reps, res.Machine.Unionfuse)
}

// writeHeader writes the machine and versions above the table in .txt.
func (res *Results) writeHeader(w io.Writer) {
	m := res.Machine
	fmt.Fprintf(w, "ufbench %s, %d repetitions, took %s\n", res.Started.Format("2006-01-02 15:04 MST"), res.Config.Reps, res.Duration)
	fmt.Fprintf(w, "machine: %s, %d cores, %d GB, Linux %s, %s\n", m.CPU, m.Cores, m.MemoryGB, m.Kernel, m.Disk)
	fmt.Fprintf(w, "load average: %s at the start, %s at the end\n", m.LoadStart, m.LoadEnd)
	fmt.Fprintf(w, "versions: %s; go-fuse %s; %s; fuse-overlayfs %s; %s; %s\n\n", m.Unionfuse, m.GoFuse, m.Go, m.FuseOverlayfs, m.Fio, m.Tar)
	for _, n := range res.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// collectMachine describes this machine and the versions in use.
func collectMachine(cfg *Config, r *Runner) Machine {
	m := Machine{Go: runtime.Version(), Cores: runtime.NumCPU(), Unionfuse: r.ufVersion}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		m.MemoryGB = int((uint64(si.Totalram)*uint64(si.Unit) + 1<<29) >> 30)
	}
	m.Disk = diskOf(r.ws.Root)
	if b, err := os.ReadFile(filepath.Join(r.repo, "go.mod")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/hanwen/go-fuse/v2" {
				m.GoFuse = f[1]
			}
		}
	}
	m.FuseOverlayfs = strings.TrimSpace(output("dpkg-query", "-W", "-f", "${Version}", "fuse-overlayfs"))
	m.Fio = firstLine(output("fio", "--version"))
	m.Tar = firstLine(output("tar", "--version"))
	m.LoadStart = loadAverage()
	return m
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

// diskOf returns the device, filesystem and options of the mount
// holding dir.
func diskOf(dir string) string {
	m, err := mountinfo.Containing(dir)
	if err != nil || m == nil {
		return ""
	}
	return fmt.Sprintf("%s on %s (%s, %s)", m.Source, m.Mountpoint, m.FSType, m.Options)
}

// output runs a command and returns its standard output, or "".
func output(name string, args ...string) string {
	b, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	return string(b)
}

// gitDescribe names a commit of the repository: rev is a revision, or
// "--dirty" for the working tree.
func gitDescribe(repo, rev string) string {
	s := strings.TrimSpace(output("git", "-C", repo, "describe", "--tags", "--always", rev))
	if s == "" {
		return "unknown commit"
	}
	return s
}
