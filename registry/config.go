package registry

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// RegistriesConf is unionfuse's own configuration of registries: a TOML
// file with docker's key for the registries that may be reached in plain
// HTTP or with TLS that is not verified,
//
//	insecure-registries = ["registry.lan:5000", "10.0.0.0/8"]
//
// and podman's tables, so that a podman registries.conf can be copied as
// it is:
//
//	[[registry]]
//	location = "registry.lan:5000"
//	insecure = true
const RegistriesConf = "registries.conf"

// ConfigFiles returns the files LoadInsecureRegistries reads, in order:
// podman's ($CONTAINERS_REGISTRIES_CONF, else
// /etc/containers/registries.conf and registries.conf.d/*.conf, then
// $XDG_CONFIG_HOME/containers/registries.conf), then unionfuse's
// (/etc/unionfuse/registries.conf, then
// $XDG_CONFIG_HOME/unionfuse/registries.conf). $XDG_CONFIG_HOME defaults
// to ~/.config.
func ConfigFiles() []string {
	var files []string
	if p := os.Getenv("CONTAINERS_REGISTRIES_CONF"); p != "" {
		files = append(files, p)
	} else {
		files = append(files, "/etc/containers/registries.conf")
		dropins, _ := filepath.Glob("/etc/containers/registries.conf.d/*.conf")
		sort.Strings(dropins)
		files = append(files, dropins...)
	}
	user := os.Getenv("XDG_CONFIG_HOME")
	if user == "" {
		if home, err := os.UserHomeDir(); err == nil {
			user = filepath.Join(home, ".config")
		}
	}
	if user != "" {
		files = append(files, filepath.Join(user, "containers", RegistriesConf))
	}
	files = append(files, filepath.Join("/etc/unionfuse", RegistriesConf))
	if user != "" {
		files = append(files, filepath.Join(user, "unionfuse", RegistriesConf))
	}
	return files
}

// registriesFile is what is read of one file: docker's list, podman's v2
// tables and podman's v1 list.
type registriesFile struct {
	InsecureRegistries []string `toml:"insecure-registries"`
	Registry           []struct {
		Prefix   string `toml:"prefix"`
		Location string `toml:"location"`
		Insecure bool   `toml:"insecure"`
	} `toml:"registry"`
	Registries struct {
		Insecure struct {
			Registries []string `toml:"registries"`
		} `toml:"insecure"`
	} `toml:"registries"`
}

// LoadInsecureRegistries returns the insecure registries that files list
// (Options.InsecureRegistries). Missing files are skipped; a file that is
// not valid TOML is an error naming it.
func LoadInsecureRegistries(files []string) ([]string, error) {
	var out []string
	for _, p := range files {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("registries configuration: %w", err)
		}
		var f registriesFile
		if err := toml.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("registries configuration %s: %w", p, err)
		}
		out = append(out, f.InsecureRegistries...)
		out = append(out, f.Registries.Insecure.Registries...)
		for _, r := range f.Registry {
			if !r.Insecure {
				continue
			}
			loc := r.Location
			if loc == "" {
				loc = r.Prefix
			}
			out = append(out, loc)
		}
	}
	for i, r := range out {
		// A podman location may name a namespace: the host is what counts.
		if _, _, err := net.ParseCIDR(r); err != nil {
			out[i], _, _ = strings.Cut(r, "/")
		}
	}
	return out, nil
}
