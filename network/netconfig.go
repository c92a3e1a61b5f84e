package network

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// DefaultName is the name of the default network (docker's "bridge"):
// the bridge unionfuse0 as root, slirp4netns rootless.
const DefaultName = "bridge"

// DefaultConfigDir holds the definitions of user-defined networks, one
// JSON file per network: they outlive a reboot, as docker's do (their
// bridges are made again by the first attach).
const DefaultConfigDir = "/var/lib/unionfuse/networks"

// userBridgePrefix + 10 hex digits of the network's id names the bridge
// of a user-defined network (docker's br-<id>).
const userBridgePrefix = "ufbr-"

// Config is a network's definition, with docker network inspect's names.
type Config struct {
	Name     string
	ID       string `json:"Id"`
	Created  time.Time
	Driver   string // "bridge"
	Subnet   netip.Prefix
	Gateway  netip.Addr
	Internal bool              // no route out of the network (no NAT)
	Labels   map[string]string `json:",omitempty"`
}

// BridgeName is the Linux bridge of network n.
func (n *Config) BridgeName() string {
	if n.Name == DefaultName {
		return BridgeName
	}
	return userBridgePrefix + n.ID[:10]
}

// Default is the default network's definition; its subnet is the one its
// bridge took (see Bridge.Attach), unknown until then.
func Default() *Config {
	id := sha256.Sum256([]byte("unionfuse network " + DefaultName))
	return &Config{Name: DefaultName, ID: hex.EncodeToString(id[:]), Driver: "bridge"}
}

// Networks are the network definitions in Dir.
type Networks struct {
	Dir string // "" is DefaultConfigDir
	// StateDir is the drivers' (Bridge.StateDir).
	StateDir string
	// DefaultOnly lists the default network alone: without root, and
	// without a rootless namespace for the caller's own networks.
	DefaultOnly bool
	// NS, when not nil, is the rootless namespace the user-defined
	// networks live in (their bridges and rules).
	NS *Namespace
}

// Bridge returns the bridge driver of network n.
func (s Networks) Bridge(n *Config) *Bridge {
	if n.Name == DefaultName {
		n = nil
	}
	return &Bridge{StateDir: s.StateDir, Net: n, Defs: s, NS: s.NS}
}

var (
	// ErrNotFound is returned for an unknown network.
	ErrNotFound = errors.New("network not found")
	// ErrExists is returned by Create for a name taken.
	ErrExists = errors.New("network already exists")
)

// nameRE is docker's rule for network names.
var netNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func (s Networks) dir() string {
	if s.Dir == "" {
		return DefaultConfigDir
	}
	return s.Dir
}

// locked runs fn under an exclusive lock of the definitions.
func (s Networks) locked(fn func() error) error {
	if err := os.MkdirAll(s.dir(), 0o755); err != nil {
		return fmt.Errorf("networks: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(s.dir(), ".lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("networks: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("networks: lock: %w", err)
	}
	return fn()
}

// List returns every network, the default first, then by name.
func (s Networks) List() ([]*Config, error) {
	def := Default()
	def.Subnet = s.Bridge(def).subnetNow()
	if def.Subnet.IsValid() {
		def.Gateway = gateway(def.Subnet)
	}
	out := []*Config{def}
	if s.DefaultOnly {
		return out, nil
	}
	ents, err := os.ReadDir(s.dir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("networks: %w", err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		n, err := s.read(name)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func (s Networks) read(name string) (*Config, error) {
	b, err := os.ReadFile(filepath.Join(s.dir(), name+".json"))
	if err != nil {
		return nil, err
	}
	n := &Config{}
	if err := json.Unmarshal(b, n); err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	return n, nil
}

// Get returns the network named (or with the id or id prefix) ref.
func (s Networks) Get(ref string) (*Config, error) {
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	var found *Config
	for _, n := range all {
		if n.Name == ref || n.ID == ref {
			return n, nil
		}
		if len(ref) >= 3 && strings.HasPrefix(n.ID, ref) {
			if found != nil {
				return nil, fmt.Errorf("network %s is ambiguous", ref)
			}
			found = n
		}
	}
	if found == nil {
		return nil, fmt.Errorf("network %s not found: %w", ref, ErrNotFound)
	}
	return found, nil
}

// Create defines a network. A zero n.Subnet takes the first free /24 of
// 10.89.1-255.0; a given one must overlap no other network's subnet and
// no route of the host. A zero n.Gateway is the subnet's first address.
func (s Networks) Create(n *Config) error {
	if !netNameRE.MatchString(n.Name) {
		return fmt.Errorf("invalid network name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", n.Name)
	}
	switch n.Name {
	case DefaultName, "none", "host":
		return fmt.Errorf("network %s is a predefined network and cannot be created", n.Name)
	}
	if n.Subnet.IsValid() {
		if !n.Subnet.Addr().Is4() || n.Subnet.Bits() > 30 || n.Subnet.Bits() < 8 {
			return fmt.Errorf("invalid subnet %s: an IPv4 prefix of /8 to /30", n.Subnet)
		}
		n.Subnet = n.Subnet.Masked()
	}
	if n.Gateway.IsValid() && (!n.Subnet.IsValid() || !n.Subnet.Contains(n.Gateway)) {
		return fmt.Errorf("invalid gateway %s: not in subnet %s", n.Gateway, n.Subnet)
	}
	return s.locked(func() error {
		all, err := s.List()
		if err != nil {
			return err
		}
		for _, o := range all {
			if o.Name == n.Name {
				return fmt.Errorf("network with name %s already exists: %w", n.Name, ErrExists)
			}
		}
		used, err := usedSubnets(all)
		if err != nil {
			return err
		}
		if s.NS != nil {
			// The rootless namespace's way out.
			used = append([]usedSubnet{{slirpAddr.Masked(), "slirp4netns's network"}}, used...)
		}
		if n.Subnet.IsValid() {
			for _, u := range used {
				if u.p.Overlaps(n.Subnet) {
					return fmt.Errorf("invalid subnet %s: it overlaps %s (%s)", n.Subnet, u.p, u.what)
				}
			}
		} else if n.Subnet, err = freeUserSubnet(used); err != nil {
			return err
		}
		if !n.Gateway.IsValid() {
			n.Gateway = gateway(n.Subnet)
		}
		id := make([]byte, 32)
		rand.Read(id)
		n.ID = hex.EncodeToString(id)
		n.Driver = "bridge"
		n.Created = time.Now().UTC()
		b, _ := json.MarshalIndent(n, "", "  ")
		return atomicfile.WriteFile(filepath.Join(s.dir(), n.Name+".json"), b, 0o644)
	})
}

// Remove deletes network n's definition and its bridge. The caller checks
// that no container uses it (Bridge.InUse).
func (s Networks) Remove(n *Config) error {
	if n.Name == DefaultName {
		return fmt.Errorf("%s is a pre-defined network and cannot be removed", n.Name)
	}
	return s.locked(func() error {
		if err := os.Remove(filepath.Join(s.dir(), n.Name+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
		return s.NS.do(false, func() error {
			if err := deleteLink(n.BridgeName()); err != nil {
				return err
			}
			return s.Bridge(Default()).applyRules(s.Bridge(Default()).subnetNow())
		})
	})
}

// usedSubnet is a subnet taken, and by what (for the error).
type usedSubnet struct {
	p    netip.Prefix
	what string
}

// usedSubnets are the subnets of the networks all (the default's, once
// its bridge exists) and the host's routes.
func usedSubnets(all []*Config) ([]usedSubnet, error) {
	var out []usedSubnet
	for _, n := range all {
		if n.Subnet.IsValid() {
			out = append(out, usedSubnet{n.Subnet, "network " + n.Name})
		}
	}
	routes, err := hostRoutes()
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		if !slices.ContainsFunc(out, func(u usedSubnet) bool { return u.p == r }) {
			out = append(out, usedSubnet{r, "a route of the host"})
		}
	}
	return out, nil
}

// freeUserSubnet is the first /24 of 10.89.1-255.0 that nothing in used
// overlaps.
func freeUserSubnet(used []usedSubnet) (netip.Prefix, error) {
	for b := 1; b <= 255; b++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 89, byte(b), 0}), 24)
		if !slices.ContainsFunc(used, func(u usedSubnet) bool { return u.p.Overlaps(p) }) {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("no free subnet left in 10.89.1.0-10.89.255.0/24: give one with --subnet")
}
