package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/docker/go-units"
	"github.com/unionfuse/unionfuse/registry"
	"golang.org/x/term"
)

// layerDisplay prints a pull's or push's layer events as docker does: on
// a terminal one line per layer, rewritten in place (with progress bars);
// otherwise one line per change of status, appended, without the byte
// counts.
type layerDisplay struct {
	w io.Writer
	// header is printed before the first line, once the registry has
	// answered (docker's "TAG: Pulling from REPOSITORY").
	header string
	tty    bool
	width  int
	order  []string          // layer ids, in the order first seen
	last   map[string]string // id -> its line as last printed
}

func newLayerDisplay(f *os.File) *layerDisplay {
	d := &layerDisplay{w: f, last: map[string]string{}}
	if term.IsTerminal(int(f.Fd())) {
		d.tty = true
		d.width, _, _ = term.GetSize(int(f.Fd()))
	}
	return d
}

// Layer prints one event.
func (d *layerDisplay) Layer(ev registry.Event) {
	d.printHeader()
	line := ev.ID + ": " + string(ev.Status)
	if ev.Status == registry.MountedFrom {
		line += " " + ev.From
	}
	progress := ev.Status == registry.Downloading || ev.Status == registry.Extracting || ev.Status == registry.Pushing
	if progress {
		if !d.tty {
			return
		}
		line += " " + progressBar(ev.Current, ev.Total, d.width)
	}
	if d.last[ev.ID] == line {
		return
	}
	_, seen := d.last[ev.ID]
	d.last[ev.ID] = line
	if !d.tty || !seen {
		if !seen {
			d.order = append(d.order, ev.ID)
		}
		fmt.Fprintln(d.w, line)
		return
	}
	up := len(d.order)
	for i, id := range d.order {
		if id == ev.ID {
			up -= i
			break
		}
	}
	// Up to the layer's line, rewrite it, back down below the last one.
	fmt.Fprintf(d.w, "\x1b[%dA\r\x1b[2K%s\r\x1b[%dB", up, line, up)
}

// printHeader prints the header if it was not printed yet.
func (d *layerDisplay) printHeader() {
	if d.header != "" {
		fmt.Fprintln(d.w, d.header)
		d.header = ""
	}
}

// progressBar is docker's "[=====>     ]  12.3MB/45.6MB" (without the bar
// on a narrow terminal).
func progressBar(current, total int64, width int) string {
	if total <= 0 {
		return fmt.Sprintf("%8v", units.HumanSize(float64(current)))
	}
	pct := min(int(float64(current)/float64(total)*100)/2, 50)
	bar := ""
	if width > 110 || width == 0 {
		bar = "[" + strings.Repeat("=", pct) + ">" + strings.Repeat(" ", 50-pct) + "] "
	}
	return fmt.Sprintf("%s%8v/%v", bar, units.HumanSize(float64(current)), units.HumanSize(float64(total)))
}
