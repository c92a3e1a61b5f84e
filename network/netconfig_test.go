package network

import (
	"net/netip"
	"strings"
	"testing"
)

// A rootless user's network may not take slirp4netns's subnet, the way
// out of the namespace its networks live in; root's may.
func TestCreateKeepsSlirpSubnetFree(t *testing.T) {
	slirp := netip.MustParsePrefix("10.0.2.0/24")
	rootless := Networks{Dir: t.TempDir(), StateDir: t.TempDir(), NS: &Namespace{RunDir: t.TempDir()}}
	for _, p := range []string{"10.0.2.0/24", "10.0.0.0/8", "10.0.2.128/25"} {
		err := rootless.Create(&Config{Name: "n", Subnet: netip.MustParsePrefix(p)})
		if err == nil || !strings.Contains(err.Error(), "slirp4netns's network") {
			t.Errorf("rootless, subnet %s: %v, want an overlap with slirp4netns's network", p, err)
		}
	}
	root := Networks{Dir: t.TempDir(), StateDir: t.TempDir()}
	if err := root.Create(&Config{Name: "n", Subnet: slirp}); err != nil && !strings.Contains(err.Error(), "a route of the host") {
		t.Errorf("root, subnet %s: %v", slirp, err)
	}
}
