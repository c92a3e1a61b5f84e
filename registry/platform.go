package registry

import (
	"fmt"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ParsePlatform parses OS/ARCH[/VARIANT] ("linux/arm64", "linux/arm/v7").
func ParsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: want OS/ARCH[/VARIANT]", s)
	}
	p := v1.Platform{OS: strings.ToLower(parts[0]), Architecture: strings.ToLower(parts[1])}
	if len(parts) == 3 {
		p.Variant = strings.ToLower(parts[2])
	}
	return p, nil
}

// HostPlatform returns the platform of this machine: linux and GOARCH
// (with the variant docker gives arm).
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		p.Variant = "v7"
	}
	return p
}

// platformString formats p as OS/ARCH[/VARIANT].
func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// pickPlatform returns the manifest of idx for want: OS and architecture
// equal, and the variant too when want names one (arm64's "v8" is the
// same as none). Without a variant in want, an entry without one is
// preferred.
func pickPlatform(idx *v1.IndexManifest, want v1.Platform) (v1.Descriptor, error) {
	var found *v1.Descriptor
	var have []string
	for i, d := range idx.Manifests {
		p := d.Platform
		if p == nil || p.OS == "unknown" {
			continue // attestations, artifacts
		}
		have = append(have, platformString(*p))
		if p.OS != want.OS || p.Architecture != want.Architecture {
			continue
		}
		if want.Variant != "" {
			if normVariant(p) == normVariant(&want) {
				return idx.Manifests[i], nil
			}
			continue
		}
		if found == nil || p.Variant == "" {
			found = &idx.Manifests[i]
		}
	}
	if found == nil {
		return v1.Descriptor{}, fmt.Errorf("no matching manifest for %s in the manifest list entries (the index has: %s)",
			platformString(want), strings.Join(have, ", "))
	}
	return *found, nil
}

func normVariant(p *v1.Platform) string {
	if p.Architecture == "arm64" && p.Variant == "v8" {
		return ""
	}
	return p.Variant
}
