package network

import (
	"net/netip"
	"testing"
)

func TestResolvConf(t *testing.T) {
	host := "# made by dhcp\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch example.com\noptions edns0\n"
	for _, tc := range []struct {
		name        string
		host        string
		dns, search []string
		want        string
	}{
		{"loopback dropped", host, nil, nil, "search example.com\nnameserver 10.0.0.2\noptions edns0\n"},
		{"only loopback", "nameserver 127.0.0.53\nnameserver ::1\n", nil, nil, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"},
		{"empty", "", nil, nil, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"},
		{"--dns --dns-search", host, []string{"1.1.1.1"}, []string{"a.test", "b.test"}, "search a.test b.test\nnameserver 1.1.1.1\noptions edns0\n"},
		{"--dns-search .", host, nil, []string{"."}, "nameserver 10.0.0.2\noptions edns0\n"},
	} {
		if got := string(ResolvConf([]byte(tc.host), tc.dns, tc.search)); got != tc.want {
			t.Errorf("%s: got\n%s\nwant\n%s", tc.name, got, tc.want)
		}
	}
}

func TestParseExtraHost(t *testing.T) {
	gw := netip.MustParseAddr("10.89.0.1")
	for in, want := range map[string]string{"db:10.1.2.3": "db 10.1.2.3", "db=10.1.2.3": "db 10.1.2.3", "h:host-gateway": "h 10.89.0.1", "v6:[::1]": "v6 ::1", "v6:::1": "v6 ::1"} {
		name, ip, err := ParseExtraHost(in, gw)
		if got := name + " " + ip.String(); err != nil || got != want {
			t.Errorf("ParseExtraHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"noip", ":1.2.3.4", "x:notanip", "x:"} {
		if _, _, err := ParseExtraHost(in, gw); err == nil {
			t.Errorf("ParseExtraHost(%q): no error", in)
		}
	}
	if _, _, err := ParseExtraHost("h:host-gateway", netip.Addr{}); err == nil {
		t.Error("host-gateway without a gateway: no error")
	}
}
