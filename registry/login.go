package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"net/http"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrUnauthorized is returned (wrapped) when a registry refuses the
// credentials.
var ErrUnauthorized = errors.New("unauthorized")

// ParseRegistry parses a registry as login takes it: host[:port], with or
// without a scheme; "" or any of Docker Hub's names is docker.io. It
// returns the name docker prints.
func ParseRegistry(s string) (string, error) {
	k := normalizeAuthKey(s)
	if s == "" {
		k = dockerHub
	}
	if k == dockerHub {
		return dockerHub, nil
	}
	reg, err := name.NewRegistry(k, name.StrictValidation)
	if err != nil || reg.RegistryStr() != k {
		return "", fmt.Errorf("invalid registry %q: want HOST[:PORT]", s)
	}
	return k, nil
}

// Login checks user and password against the registry reg (as
// ParseRegistry returns it) and, when the registry takes them, records
// them in docker's config.json (or o.AuthFile) as docker login does. It
// returns the file written.
func Login(ctx context.Context, reg, user, password string, o Options) (string, error) {
	if err := CheckLogin(ctx, reg, user, password, o); err != nil {
		return "", err
	}
	path := o.AuthFile
	if path == "" {
		path = DockerConfigPath()
	}
	return path, saveLogin(path, reg, user, password)
}

// saveLogin records user and password for reg in the config file at
// path, replacing any entry for reg under another spelling.
func saveLogin(path, reg, user, password string) error {
	return editAuths(path, func(auths map[string]json.RawMessage) {
		for k := range auths {
			if normalizeAuthKey(k) == normalizeAuthKey(reg) {
				delete(auths, k)
			}
		}
		b, _ := json.Marshal(authEntry{Auth: encodeAuth(user, password)})
		auths[authKey(reg)] = b
	})
}

// CheckLogin asks the registry whether it takes user and password: a GET
// of /v2/ with them, through a token when the registry wants one.
func CheckLogin(ctx context.Context, reg, user, password string, o Options) error {
	r, err := name.NewRegistry(ggcrRegistry(reg), o.nameOptions(reg)...)
	if err != nil {
		return fmt.Errorf("login %s: %w", reg, err)
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
	client, err := o.client(ctx, r, auth, []string{r.Scope(transport.PullScope)})
	if err != nil {
		return loginError(reg, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+r.RegistryStr()+"/v2/", nil)
	if err != nil {
		return fmt.Errorf("login %s: %w", reg, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return loginError(reg, err)
	}
	defer resp.Body.Close()
	return loginError(reg, transport.CheckError(resp, http.StatusOK))
}

// ggcrRegistry returns go-containerregistry's name of a registry docker
// names reg.
func ggcrRegistry(reg string) string {
	if reg == dockerHub {
		return name.DefaultRegistry
	}
	return reg
}

// loginError says "unauthorized" for a refusal of the credentials.
func loginError(reg string, err error) error {
	if err == nil {
		return nil
	}
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("login %s: %w: incorrect username or password", reg, ErrUnauthorized)
	}
	return fmt.Errorf("login %s: %w", reg, describeError(err))
}

// Logout removes the credentials of reg from docker's config.json (or
// o.AuthFile). It reports false when there were none.
func Logout(reg string, o Options) (bool, error) {
	path := o.AuthFile
	if path == "" {
		path = DockerConfigPath()
	}
	auths, err := readAuths(path)
	if err != nil {
		return false, err
	}
	found := false
	for k := range auths {
		found = found || normalizeAuthKey(k) == normalizeAuthKey(reg)
	}
	if !found {
		return false, nil
	}
	return true, editAuths(path, func(auths map[string]json.RawMessage) {
		for k := range auths {
			if normalizeAuthKey(k) == normalizeAuthKey(reg) {
				delete(auths, k)
			}
		}
	})
}

// authKey is the key docker login writes for reg.
func authKey(reg string) string {
	if reg == dockerHub {
		return dockerHubAuthKey
	}
	return reg
}

// editAuths changes the "auths" of the config file at path, keeping
// everything else in it, and writes it back atomically, readable by its
// owner only.
func editAuths(path string, edit func(map[string]json.RawMessage)) error {
	cfg := map[string]json.RawMessage{}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("credentials: %w", err)
	default:
		if err := json.Unmarshal(b, &cfg); err != nil {
			return fmt.Errorf("credentials: %s: %w", path, err)
		}
	}
	auths := map[string]json.RawMessage{}
	if raw, ok := cfg["auths"]; ok {
		if err := json.Unmarshal(raw, &auths); err != nil {
			return fmt.Errorf("credentials: %s: auths: %w", path, err)
		}
	}
	edit(auths)
	raw, err := json.Marshal(auths)
	if err != nil {
		return err
	}
	cfg["auths"] = raw
	out, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(out, '\n'), 0o600); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	return nil
}
