package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// dockerHubAuthKey is the key docker's config.json keeps Docker Hub's
// credentials under, for historical reasons.
const dockerHubAuthKey = "https://index.docker.io/v1/"

// DockerConfigPath returns docker's config.json: $DOCKER_CONFIG/config.json,
// else ~/.docker/config.json.
func DockerConfigPath() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/"
	}
	return filepath.Join(home, ".docker", "config.json")
}

// authFiles returns the credentials files to read, first match wins:
// o.AuthFile, $REGISTRY_AUTH_FILE, docker's config.json, then containers'
// auth.json in $XDG_RUNTIME_DIR and in ~/.config.
func (o *Options) authFiles() []string {
	var files []string
	add := func(p string) {
		if p != "" {
			files = append(files, p)
		}
	}
	add(o.AuthFile)
	add(os.Getenv("REGISTRY_AUTH_FILE"))
	add(DockerConfigPath())
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
		add(filepath.Join(x, "containers", "auth.json"))
	}
	cfg := os.Getenv("XDG_CONFIG_HOME")
	if cfg == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cfg = filepath.Join(home, ".config")
		}
	}
	if cfg != "" {
		add(filepath.Join(cfg, "containers", "auth.json"))
	}
	return files
}

// keychain returns the credentials lookup: the files of authFiles, then
// go-containerregistry's keychain for docker's credential helpers.
func (o *Options) keychain() authn.Keychain {
	return authn.NewMultiKeychain(fileKeychain{files: o.authFiles()}, authn.DefaultKeychain)
}

// authEntry is one entry of the "auths" of docker's config.json (and of
// containers' auth.json, which has the same format).
type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// fileKeychain finds credentials in docker and containers auth files.
type fileKeychain struct{ files []string }

// Resolve returns the credentials of the first file with an entry for the
// target's repository (containers' files may name one) or registry.
func (k fileKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	keys := []string{target.String()}
	if repo, ok := target.(name.Repository); ok {
		// From the most specific path up: reg/a/b, reg/a.
		p := repo.RepositoryStr()
		for i := strings.LastIndex(p, "/"); i > 0; i = strings.LastIndex(p, "/") {
			p = p[:i]
			keys = append(keys, target.RegistryStr()+"/"+p)
		}
	}
	keys = append(keys, target.RegistryStr())
	for _, f := range k.files {
		auths, err := readAuths(f)
		if err != nil {
			return nil, err
		}
		for _, key := range keys {
			if e, ok := lookupAuth(auths, key); ok {
				cfg := authn.AuthConfig{Username: e.Username, Password: e.Password,
					IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
				if e.Auth != "" {
					b, err := base64.StdEncoding.DecodeString(e.Auth)
					user, pass, ok := strings.Cut(string(b), ":")
					if err != nil || !ok {
						return nil, fmt.Errorf("credentials: %s: the auth of %s is not base64 USER:PASSWORD", f, key)
					}
					cfg.Username, cfg.Password = user, pass
				}
				return authn.FromConfig(cfg), nil
			}
		}
	}
	return authn.Anonymous, nil
}

// lookupAuth finds the entry for key (host[:port][/path]) among auths,
// whose keys may carry a scheme ("https://localhost:5000") or a path
// (docker's Docker Hub key); Docker Hub is known by all its names.
func lookupAuth(auths map[string]authEntry, key string) (authEntry, bool) {
	want := normalizeAuthKey(key)
	for k, e := range auths {
		if normalizeAuthKey(k) == want && (e != authEntry{}) {
			return e, true
		}
	}
	return authEntry{}, false
}

// normalizeAuthKey reduces a config key or registry to host[:port][/path]
// with Docker Hub's names as docker.io.
func normalizeAuthKey(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
	k = strings.TrimSuffix(k, "/")
	if k == strings.TrimSuffix(strings.TrimPrefix(dockerHubAuthKey, "https://"), "/") {
		return dockerHub
	}
	host, rest, _ := strings.Cut(k, "/")
	switch host {
	case name.DefaultRegistry, "registry-1.docker.io", dockerHub:
		host = dockerHub
	}
	if rest == "" {
		return host
	}
	return host + "/" + rest
}

// readAuths reads the "auths" of a docker or containers auth file; a
// missing file has none.
func readAuths(path string) (map[string]authEntry, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	var cfg struct {
		Auths map[string]authEntry `json:"auths"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("credentials: %s: %w", path, err)
	}
	return cfg.Auths, nil
}

// encodeAuth returns the "auth" field of a config entry.
func encodeAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}
