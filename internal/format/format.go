// Package format prints values through the Go templates of docker's
// --format flag, for every command that has one (inspect, ps, images,
// history, system df, ...): one implementation of docker's template
// helpers and of its "table" and "json" directives.
//
// A format is a text/template run once per value, each output followed by
// a newline. "json" alone prints each value as one JSON object
// ({{json .}}). A format starting with "table" prints a header line first,
// made by running the rest of the format on the column names (the helpers
// then leave the names as they are), and aligns the columns with a
// tabwriter as docker does; "\t" and "\n" written in the format are a tab
// and a newline. The helpers are docker's (its templates package):
//
//	json VALUE           VALUE as compact JSON
//	join LIST SEP        the elements of LIST joined with SEP
//	split STRING SEP     strings.Split
//	upper, lower, title  the case of a string
//	truncate STRING N    the first N bytes
//	pad STRING L R       L spaces, STRING, R spaces (nothing for "")
//	println ARGS...      fmt.Sprintln (text/template's)
package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
	"text/template"
	"unicode"
)

// The format directives.
const (
	tableKey = "table"
	jsonKey  = "json"
)

// IsTable reports whether format is a table format ("table ..." or
// "table"), which prints a header line.
func IsTable(format string) bool { return strings.HasPrefix(format, tableKey) }

// IsDefault reports whether format asks for a command's default output:
// none given, or a bare "table".
func IsDefault(format string) bool { return format == "" || format == tableKey }

// funcs are docker's template helpers.
var funcs = template.FuncMap{
	"json":     toJSON,
	"join":     join,
	"split":    strings.Split,
	"upper":    strings.ToUpper,
	"lower":    strings.ToLower,
	"title":    title,
	"truncate": truncate,
	"pad":      pad,
}

// headerFuncs replace funcs when a table's header is made: a column's
// name is printed as it is.
var headerFuncs = template.FuncMap{
	"json":     func(v string) string { return v },
	"join":     func(v, _ string) string { return v },
	"split":    func(v, _ string) string { return v },
	"upper":    func(v string) string { return v },
	"lower":    func(v string) string { return v },
	"title":    func(v string) string { return v },
	"truncate": func(v string, _ int) string { return v },
}

// Writer prints values through a format. Values are buffered; Flush
// prints them (after the header, for a table).
type Writer struct {
	out    io.Writer
	tmpl   *template.Template
	table  bool
	header any
	buf    bytes.Buffer
}

// New returns a Writer that prints to out through format. header is what
// a table's header is made from: usually a map from each field to its
// column name ("ID" -> "CONTAINER ID"); nil for values that have no table
// (inspect).
func New(out io.Writer, format string, header any) (*Writer, error) {
	text := format
	if format == jsonKey {
		text = "{{json .}}"
	}
	table := false
	if rest, ok := strings.CutPrefix(text, tableKey); ok {
		text, table = rest, true
	}
	text = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(strings.Trim(text, " "))
	tmpl, err := template.New("").Funcs(funcs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %w", err)
	}
	return &Writer{out: out, tmpl: tmpl, table: table, header: header}, nil
}

// Write runs the format on v. A field the format names that v's Go type
// lacks is looked up in v's JSON form instead, as docker inspect does
// (so {{.Id}} works for a field ID tagged "Id").
func (w *Writer) Write(v any) error {
	var out bytes.Buffer
	if err := w.tmpl.Execute(&out, v); err != nil {
		generic, gerr := jsonForm(v)
		out.Reset()
		if gerr != nil || w.tmpl.Execute(&out, generic) != nil {
			return fmt.Errorf("template: %w", err)
		}
	}
	w.buf.Write(out.Bytes())
	w.buf.WriteByte('\n')
	return nil
}

// Flush prints what was written: for a table, the header and the rows
// aligned by a tabwriter laid out as docker's.
func (w *Writer) Flush() error {
	if !w.table {
		_, err := w.buf.WriteTo(w.out)
		return err
	}
	tw := tabwriter.NewWriter(w.out, 10, 1, 3, ' ', 0)
	if w.header != nil {
		hdr, err := w.tmpl.Clone()
		if err == nil {
			err = hdr.Funcs(headerFuncs).Execute(tw, w.header)
		}
		if err != nil {
			return fmt.Errorf("template: %w", err)
		}
		tw.Write([]byte{'\n'})
	}
	w.buf.WriteTo(tw)
	return tw.Flush()
}

// jsonForm is v through JSON: maps, slices and json.Number values.
func jsonForm(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	return out, dec.Decode(&out)
}

// toJSON is the json helper: v as one line of JSON, HTML not escaped.
func toJSON(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

// join is the join helper: the elements of a list, strings or not, joined
// with sep.
func join(list any, sep string) (string, error) {
	if list == nil {
		return "", nil
	}
	if ss, ok := list.([]string); ok {
		return strings.Join(ss, sep), nil
	}
	rv := reflect.ValueOf(list)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return "", fmt.Errorf("join: want a list, not %T", list)
	}
	parts := make([]string, rv.Len())
	for i := range parts {
		parts[i] = fmt.Sprint(rv.Index(i).Interface())
	}
	return strings.Join(parts, sep), nil
}

// title upper-cases the first letter of each word (strings.Title, which
// is deprecated for Unicode's sake; docker uses it for ASCII).
func title(s string) string {
	prev := ' '
	return strings.Map(func(r rune) rune {
		defer func() { prev = r }()
		if unicode.IsSpace(prev) || unicode.IsPunct(prev) {
			return unicode.ToTitle(r)
		}
		return r
	}, s)
}

// truncate is the first n bytes of s.
func truncate(s string, n int) string {
	if n < 0 || len(s) <= n {
		return s
	}
	return s[:n]
}

// pad surrounds a non-empty s with spaces.
func pad(s string, left, right int) string {
	if s == "" {
		return s
	}
	return strings.Repeat(" ", left) + s + strings.Repeat(" ", right)
}
