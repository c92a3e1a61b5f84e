package runner

import (
	"strings"
	"testing"
)

func TestParsePort(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{in: "8080:80", want: "0.0.0.0:8080->80/tcp"},
		{in: "8080:80/tcp", want: "0.0.0.0:8080->80/tcp"},
		{in: "127.0.0.1:8080:80", want: "127.0.0.1:8080->80/tcp"},
		{in: "[::1]:8080:80", want: "[::1]:8080->80/tcp"},
		{in: "80", want: "0.0.0.0:0->80/tcp"},
		{in: "127.0.0.1::80", want: "127.0.0.1:0->80/tcp"},
		{in: "", err: "container port"},
		{in: "8053:53/udp", err: "only tcp"},
		{in: "x:80", err: "host port"},
		{in: "8080:0", err: "container port"},
		{in: "70000:80", err: "host port"},
		{in: "host:8080:80", err: "not an IP address"},
	} {
		p, err := parsePort(c.in)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("parsePort(%q) = %v, %v; want an error with %q", c.in, p, err, c.err)
		case c.err == "" && (err != nil || p.String() != c.want):
			t.Errorf("parsePort(%q) = %v, %v; want %s", c.in, p, err, c.want)
		}
	}
}
