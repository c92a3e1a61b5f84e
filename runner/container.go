package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/internal/atomicfile"
	"github.com/unionfuse/unionfuse/network"
	"golang.org/x/sys/unix"
)

// Status is where a container is in its life: created -> running ->
// exited -> running ... until it is removed; a running container may be
// paused and unpaused (pause.go).
type Status string

// The statuses, with Docker's names.
const (
	StatusCreated Status = "created"
	StatusRunning Status = "running"
	StatusExited  Status = "exited"
)

// Config is what a container was asked to run, with the image's defaults
// already applied: it does not change after create.
type Config struct {
	Entrypoint []string
	Cmd        []string
	Args       []string // Entrypoint + Cmd as executed
	Env        []string
	WorkDir    string
	User       string
	Hostname   string
	Network    string // "none", "host", "bridge", "container:ID" or a network's name (network.go)
	// Networks are the networks of network.Bridge or network.Slirp it
	// is on (network.go), the first one --network's.
	Networks []EndpointConfig `json:",omitempty"`
	// DNS, DNSSearch and ExtraHosts (NAME:IP) are docker run's --dns,
	// --dns-search and --add-host.
	DNS         []string `json:",omitempty"`
	DNSSearch   []string `json:",omitempty"`
	ExtraHosts  []string `json:",omitempty"`
	Ports       []Port   `json:",omitempty"` // published (ports.go)
	Volumes     []Volume
	ReadOnly    bool
	TTY         bool
	Interactive bool
	AutoRemove  bool
	StopSignal  string
	Transient   bool `json:",omitempty"` // see Options.Transient
	// Labels are the image's labels with --label's added.
	Labels map[string]string `json:",omitempty"`
	// Restart is what the monitor does when the command exits.
	Restart RestartPolicy `json:",omitzero"`
	// Init runs a reaper as pid 1 that runs the command (docker --init).
	Init bool `json:",omitempty"`
	// Resources are the cgroup limits (cgroup.go); `update` changes them.
	Resources Resources `json:",omitzero"`
	// Security is what the container's root may do (security.go).
	Security Security `json:",omitzero"`
}

// Record is containers/<id>/config.json. Its ID and Image fields are the
// ones cowcache reads (cowcache.ContainerRef).
type Record struct {
	ID        string          `json:"ID"`
	Image     cowcache.Digest `json:"Image"` // "" for scratch
	ImageName string          `json:"ImageName"`
	Name      string          `json:"Name"`
	Created   time.Time       `json:"Created"`
	Config    Config          `json:"Config"`
}

// State is containers/<id>/state.json: what happened to the container.
type State struct {
	Status Status `json:"Status"`
	Pid    int    `json:"Pid,omitempty"` // the init's pid on the host while running
	// PidStart is when Pid started (clock ticks since boot), so that a
	// recycled pid is never signalled.
	PidStart   uint64    `json:"PidStart,omitempty"`
	ExitCode   int       `json:"ExitCode"`
	Error      string    `json:"Error,omitempty"`
	StartedAt  time.Time `json:"StartedAt,omitzero"`
	FinishedAt time.Time `json:"FinishedAt,omitzero"`
	// Rootless records whether the container runs in a user namespace
	// (exec must then join it too).
	Rootless bool `json:"Rootless,omitempty"`
	// Ports are the published ports while running, with the host ports
	// the kernel picked where none was asked for.
	Ports []Port `json:"Ports,omitempty"`
	// Networks are what the container got from its networks while it
	// runs, in Config.Networks's order (none for network none and host).
	Networks []*network.Attachment `json:"Networks,omitempty"`
	// RestartCount is how often the monitor restarted the command since
	// it was last started by hand.
	RestartCount int `json:"RestartCount,omitempty"`
	// CgroupPath is the container's cgroup while it runs (cgroup.go);
	// "" when it has none.
	CgroupPath string `json:"CgroupPath,omitempty"`
	// OOMKilled: the kernel's OOM killer killed a process of the
	// container in its last run.
	OOMKilled bool `json:"OOMKilled,omitempty"`
	// Paused: the command runs, its processes stopped by unionfuse
	// pause (pause.go).
	Paused bool `json:"Paused,omitempty"`
}

// Container is a container of the store: its record and its last state.
type Container struct {
	Record
	State State
	dir   string
	// netnsPid is a process in the network namespace the init joins
	// (--network container:), set by joinNetwork; 0 for none.
	netnsPid int
}

// Dir returns containers/<id>.
func (c *Container) Dir() string { return c.dir }

// UpperDir returns the container's layer: an overlay upper directory.
func (c *Container) UpperDir() string { return filepath.Join(c.dir, "diff") }

// InitDir returns the init layer (mount points and /etc stubs).
func (c *Container) InitDir() string { return filepath.Join(c.dir, "init") }

// WorkDir returns the overlay work directory of the container's layer.
func (c *Container) WorkDir() string { return filepath.Join(c.dir, "work") }

// Rootfs returns where the container's root is mounted while it runs.
func (c *Container) Rootfs() string { return filepath.Join(c.dir, "merged") }

// ShortID returns the first 12 characters of the id, as docker ps shows.
func (c *Container) ShortID() string { return c.ID[:12] }

// saveRecord writes config.json.
func (c *Container) saveRecord() error {
	return writeJSON(filepath.Join(c.dir, "config.json"), c.Record)
}

// saveState writes state.json.
func (c *Container) saveState() error {
	defer c.lockState()()
	return writeJSON(filepath.Join(c.dir, "state.json"), c.State)
}

// updateState reads state.json anew, lets change edit it (an error
// leaves it as it was) and writes it, into c.State too. The state's lock
// is held throughout: a monitor recording meanwhile that the command
// ended is never written over with what was read before.
func (c *Container) updateState(change func(*State) error) error {
	defer c.lockState()()
	var st State
	b, err := os.ReadFile(filepath.Join(c.dir, "state.json"))
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		return fmt.Errorf("container %s: state.json: %w", c.ShortID(), err)
	}
	if err := change(&st); err != nil {
		return err
	}
	c.State = st
	return writeJSON(filepath.Join(c.dir, "state.json"), c.State)
}

// lockState takes state.lock, which orders the writers of state.json
// (saveState, updateState); unlock releases it. Without the file (a
// container being removed) there is nothing to order.
func (c *Container) lockState() (unlock func()) {
	f, err := os.OpenFile(filepath.Join(c.dir, "state.lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return func() {}
	}
	unix.Flock(int(f.Fd()), unix.LOCK_EX)
	return func() { f.Close() }
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}

// ErrNoSuchContainer is returned (wrapped) for a name or id that matches
// no container.
var ErrNoSuchContainer = errors.New("no such container")

// loadContainer reads containers/<id>.
func (r *Runner) loadContainer(id string) (*Container, error) {
	c := &Container{dir: r.store.ContainerDir(id)}
	b, err := os.ReadFile(filepath.Join(c.dir, "config.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", id, ErrNoSuchContainer)
		}
		return nil, err
	}
	if err := json.Unmarshal(b, &c.Record); err != nil {
		return nil, fmt.Errorf("container %s: config.json: %w", id, err)
	}
	c.ID = id
	b, err = os.ReadFile(filepath.Join(c.dir, "state.json"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.State = State{Status: StatusCreated}
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, &c.State); err != nil {
			return nil, fmt.Errorf("container %s: state.json: %w", id, err)
		}
	}
	return c, nil
}

// List returns every container, newest first, with its state brought up
// to date (a container whose monitor died is recorded as exited).
func (r *Runner) List() ([]*Container, error) {
	ents, err := os.ReadDir(filepath.Dir(r.store.ContainerDir("x")))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []*Container
	for _, e := range ents {
		c, err := r.loadContainer(e.Name())
		if errors.Is(err, ErrNoSuchContainer) {
			// Being created or removed; or debris of a create that was
			// killed (config.json is written last, milliseconds after).
			dir := r.store.ContainerDir(e.Name())
			if info, err := e.Info(); err == nil && e.IsDir() && time.Since(info.ModTime()) > 10*time.Minute &&
				!mounted(filepath.Join(dir, "merged")) {
				r.store.RemoveContainerDir(e.Name())
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if r.reap(c) {
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Get finds a container by name, full id or unique id prefix, with its
// state brought up to date.
func (r *Runner) Get(ref string) (*Container, error) {
	all, err := r.List()
	if err != nil {
		return nil, err
	}
	var found []*Container
	for _, c := range all {
		if c.Name == ref || c.ID == ref {
			return c, nil
		}
		if ref != "" && strings.HasPrefix(c.ID, ref) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%s: %w", ref, ErrNoSuchContainer)
	case 1:
		return found[0], nil
	default:
		return nil, fmt.Errorf("%s matches %d containers: give more of the id", ref, len(found))
	}
}

// Reload re-reads a container's state from disk.
func (r *Runner) Reload(c *Container) error {
	n, err := r.loadContainer(c.ID)
	if err != nil {
		return err
	}
	if r.reap(n) {
		return fmt.Errorf("%s: %w", c.ID, ErrNoSuchContainer)
	}
	*c = *n
	return nil
}
