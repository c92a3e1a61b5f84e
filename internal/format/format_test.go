package format

import (
	"strings"
	"testing"
)

type state struct{ Status string }

type row struct {
	ID     string `json:"Id"`
	Names  []string
	Size   int64
	State  state
	Labels map[string]string
}

func TestWriter(t *testing.T) {
	v := row{ID: "abc", Names: []string{"a", "b"}, Size: 12345678, State: state{"running"}, Labels: map[string]string{"k": "v"}}
	header := map[string]string{"ID": "CONTAINER ID", "Names": "NAMES"}
	for _, tc := range []struct{ format, want string }{
		{"{{.ID}}", "abc\n"},
		{"{{.Id}}", "abc\n"}, // the JSON name
		{"{{.Size}}", "12345678\n"},
		{"{{.State.Status}}", "running\n"},
		{"{{json .Names}}", `["a","b"]` + "\n"},
		{"{{join .Names \",\"}}", "a,b\n"},
		{"{{upper .State.Status}} {{title \"hello world\"}} {{lower \"AB\"}}", "RUNNING Hello World ab\n"},
		{"{{truncate .ID 2}}|{{pad .ID 1 2}}|{{split \"a:b\" \":\"}}", "ab| abc  |[a b]\n"},
		{"{{index .Labels \"k\"}}", "v\n"},
		{`{{.ID}}\t{{.State.Status}}`, "abc\trunning\n"},
		{"{{println .ID}}", "abc\n\n"},
		{"table {{.ID}}\t{{.Names}}", "CONTAINER ID   NAMES\nabc            [a b]\n"},
		{"table {{upper .ID}}", "CONTAINER ID\nABC\n"},
		{"json", `{"Id":"abc","Names":["a","b"],"Size":12345678,"State":{"Status":"running"},"Labels":{"k":"v"}}` + "\n"},
	} {
		var b strings.Builder
		w, err := New(&b, tc.format, header)
		if err != nil {
			t.Fatalf("%q: %v", tc.format, err)
		}
		if err := w.Write(v); err != nil {
			t.Fatalf("%q: %v", tc.format, err)
		}
		if err := w.Flush(); err != nil {
			t.Fatalf("%q: %v", tc.format, err)
		}
		if b.String() != tc.want {
			t.Errorf("%q: got %q, want %q", tc.format, b.String(), tc.want)
		}
	}
	if _, err := New(&strings.Builder{}, "{{.X", nil); err == nil {
		t.Error("a bad template parsed")
	}
	// As docker inspect: a name in neither form is <no value>.
	var b strings.Builder
	w, _ := New(&b, "{{.Nope}}", nil)
	if err := w.Write(v); err != nil || w.Flush() != nil || b.String() != "<no value>\n" {
		t.Errorf("a missing field: %v, %q", err, b.String())
	}
}
