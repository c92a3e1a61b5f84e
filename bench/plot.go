package main

import (
	"fmt"
	"image/color"
	"io"
	"math"

	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// systemStyle gives each plotted system a colour and a glyph.
var systemStyle = map[string]struct {
	color color.Color
	glyph draw.GlyphDrawer
}{
	sysNative: {color.RGBA{110, 110, 110, 255}, draw.SquareGlyph{}},
	sysFuseOv: {color.RGBA{230, 120, 20, 255}, draw.TriangleGlyph{}},
	sysUnion:  {color.RGBA{30, 90, 200, 255}, draw.CircleGlyph{}},

	sysUnionNoPT: {color.RGBA{120, 60, 170, 255}, draw.RingGlyph{}},
	sysKernelMC:  {color.RGBA{20, 150, 60, 255}, draw.PlusGlyph{}},
	sysUnionMC:   {color.RGBA{0, 170, 200, 255}, draw.CrossGlyph{}},

	sysUnionServer: {color.RGBA{200, 30, 90, 255}, draw.PyramidGlyph{}},
}

// points are one system's slowdowns with their min–max, as the plotter's
// XYer and XErrorer.
type points []struct{ x, y, lo, hi float64 }

// Len implements plotter.XYer.
func (p points) Len() int { return len(p) }

// XY implements plotter.XYer.
func (p points) XY(i int) (float64, float64) { return p[i].x, p[i].y }

// XError implements plotter.XErrorer: the distances to min and max.
func (p points) XError(i int) (float64, float64) {
	return p[i].x - p[i].lo, p[i].hi - p[i].x
}

// writePlots draws the slowdown of every system relative to kernel
// overlayfs, per metric (one row each, log scale, min–max as bars), and
// writes base.svg and base.png. It returns the paths written.
func writePlots(res *Results, base string) ([]string, error) {
	p, n, err := slowdownPlot(res, "")
	if p == nil || err != nil {
		return nil, err
	}
	return writeImages(base, []*plot.Plot{p}, []int{n})
}

// writeCombinedPlots draws the plot of each run (as writePlots does),
// one above the other under its caption, into base.svg and base.png.
func writeCombinedPlots(runs []*Results, captions []string, base string) ([]string, error) {
	var plots []*plot.Plot
	var rows []int
	for i, res := range runs {
		p, n, err := slowdownPlot(res, captions[i])
		if err != nil {
			return nil, err
		}
		if p != nil {
			plots, rows = append(plots, p), append(rows, n)
		}
	}
	if len(plots) == 0 {
		return nil, nil
	}
	return writeImages(base, plots, rows)
}

// slowdownPlot returns the plot of res's slowdowns and its number of
// rows, or nil when res has no figure to draw. caption, when set, starts
// the title.
func slowdownPlot(res *Results, caption string) (*plot.Plot, int, error) {
	var metrics []*MetricResult
	for _, mr := range res.Metrics {
		if k := res.system(mr.Key, refSystem); !mr.NoRatio && k != nil && k.Median == k.Median {
			metrics = append(metrics, mr)
		}
	}
	if len(metrics) == 0 {
		return nil, 0, nil
	}
	p := plot.New()
	// No X label: gonum places it at the arithmetic middle of the range,
	// which on a log scale is near the right end, and pads the data area
	// to make room for it there. The title says it instead.
	p.Title.Text = "Times slower than kernel overlayfs in the same run: median and min–max (log scale, lower is better)\n" +
		"time ÷ kernel's time; for GB/s and IOPS, kernel's ÷ system's; below 0.05x not drawn"
	if caption != "" {
		p.Title.Text = caption + "\n" + p.Title.Text
	}
	p.X.Scale = plot.LogScale{}
	n := len(metrics)
	labels := make([]string, n)
	for i, mr := range metrics {
		labels[n-1-i] = fmt.Sprintf("%s (%s)", mr.Title, mr.Unit)
	}
	p.NominalY(labels...)
	p.Y.Min, p.Y.Max = -0.6, float64(n)-0.4
	p.Add(plotter.NewGrid())

	lo, hi := 1.0, 1.0
	for _, sys := range res.Config.Systems {
		st, ok := systemStyle[sys]
		if !ok {
			continue
		}
		var pts points
		for i, mr := range metrics {
			s := res.system(mr.Key, sys)
			if s == nil || s.Slowdown != s.Slowdown {
				continue
			}
			x, l, h := float64(s.Slowdown), float64(s.SlowdownMin), float64(s.SlowdownMax)
			if x < plotFloor {
				// Native "copy-up" is no copy at all: off the scale.
				continue
			}
			l = math.Max(l, plotFloor)
			y := float64(n-1-i) + offset(sys)
			pts = append(pts, struct{ x, y, lo, hi float64 }{x, y, l, h})
			lo, hi = math.Min(lo, l), math.Max(hi, h)
		}
		if len(pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, 0, err
		}
		sc.GlyphStyle.Color, sc.GlyphStyle.Shape, sc.GlyphStyle.Radius = st.color, st.glyph, vg.Points(3.5)
		eb, err := plotter.NewXErrorBars(pts)
		if err != nil {
			return nil, 0, err
		}
		eb.LineStyle.Color, eb.CapWidth = st.color, vg.Points(4)
		p.Add(eb, sc)
		p.Legend.Add(sys, sc)
	}
	one, err := plotter.NewLine(plotter.XYs{{X: 1, Y: -0.6}, {X: 1, Y: float64(n) - 0.4}})
	if err != nil {
		return nil, 0, err
	}
	one.LineStyle.Color, one.LineStyle.Width = color.Black, vg.Points(1.2)
	one.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one)
	p.Legend.Add(sysKernel+" (= 1)", one)
	p.Legend.Top = true

	p.X.Min, p.X.Max = math.Max(lo/1.3, plotFloor), hi*1.3
	p.X.Tick.Marker = logTicks(p.X.Min, p.X.Max)
	return p, n, nil
}

// writeImages draws plots one above the other, each as tall as its rows
// need, into base.svg and base.png, and returns the paths written.
func writeImages(base string, plots []*plot.Plot, rows []int) ([]string, error) {
	w := 11 * vg.Inch
	heights := make([]vg.Length, len(plots))
	var h vg.Length
	for i, n := range rows {
		heights[i] = vg.Length(1.6+0.32*float64(n)) * vg.Inch
		h += heights[i]
	}
	drawAll := func(c draw.Canvas) {
		top := c.Max.Y
		for i, p := range plots {
			sub := c
			sub.Max.Y, sub.Min.Y = top, top-heights[i]
			p.Draw(margins(sub))
			top -= heights[i]
		}
	}
	var written []string
	svg := base + ".svg"
	if err := atomicfile.Write(svg, 0o644, func(out io.Writer) error {
		c := vgsvg.New(w, h)
		drawAll(draw.New(c))
		_, err := c.WriteTo(out)
		return err
	}); err != nil {
		return nil, err
	}
	written = append(written, svg)
	png := base + ".png"
	if err := atomicfile.Write(png, 0o644, func(out io.Writer) error {
		c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(120), vgimg.UseBackgroundColor(color.White))
		drawAll(draw.New(c))
		_, err := vgimg.PngCanvas{Canvas: c}.WriteTo(out)
		return err
	}); err != nil {
		return nil, err
	}
	return append(written, png), nil
}

// margins keeps the plot a few points off the edges of the image.
func margins(c draw.Canvas) draw.Canvas {
	m := vg.Points(8)
	return draw.Crop(c, m, -m, m, -m)
}

// plotFloor is the left end of the plot's axis: smaller slowdowns (native
// appends that copy nothing) are not drawn.
const plotFloor = 0.05

// offset spreads the systems of one row apart vertically.
func offset(sys string) float64 {
	switch sys {
	case sysNative:
		return -0.22
	case sysUnion:
		return 0.22
	case sysUnionNoPT:
		return 0.11
	}
	return 0
}

// logTicks labels 1, 2 and 5 times the powers of ten between min and max.
func logTicks(min, max float64) plot.ConstantTicks {
	var ticks plot.ConstantTicks
	for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < min || v > max {
				continue
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: fmt.Sprintf("%gx", v)})
		}
	}
	return ticks
}
