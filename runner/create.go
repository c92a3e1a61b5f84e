package runner

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/unionfuse/unionfuse/cowcache"
	"golang.org/x/sys/unix"
)

// Options are what `unionfuse run` and `create` are asked; empty fields
// take the image's values.
type Options struct {
	Image      string   // image ref (name, id, short id); "" = scratch (an empty root)
	Name       string   // "" = generated
	Cmd        []string // overrides the image's Cmd when non-nil
	Entrypoint []string // overrides the image's Entrypoint when non-nil (empty: none)
	Env        []string // K=V, added to or replacing the image's Env
	WorkDir    string   // overrides the image's WorkingDir
	User       string   // overrides the image's User: name, uid, name:group or uid:gid
	Volumes    []string // -v [SRC:]DST[:OPTS] (volume.go)
	Mounts     []string // --mount type=...,source=...,target=...
	Tmpfs      []string // --tmpfs DST[:OPTS]
	Network    string   // "" (bridge), "none", "host", "bridge", "container:NAME" or a network name
	DNS        []string // nameservers for resolv.conf (--dns)
	DNSSearch  []string // search domains for resolv.conf (--dns-search)
	AddHosts   []string // NAME:IP lines for /etc/hosts (--add-host)
	// NetworkAliases and IP are docker run's --network-alias and --ip
	// (user-defined networks only).
	NetworkAliases []string
	IP             string
	Publish        []string // [IP:]HOSTPORT:CONTAINERPORT[/tcp] (ports.go)
	// PublishAll publishes every port the image EXPOSEs on a port the
	// kernel picks (-P).
	PublishAll bool
	Hostname   string // "" = the short container id
	ReadOnly   bool   // mount the container's root read-only
	TTY        bool   // allocate a pseudo-terminal
	// Interactive keeps stdin open (without it the process reads /dev/null).
	Interactive bool
	AutoRemove  bool // remove the container when it exits (--rm)
	// Transient: the container belongs to the process creating it (a
	// build step's), which removes it; should that process die first,
	// the next List removes it (see owner.go).
	Transient bool
	// Pull says when Image is fetched from its registry (the runner's
	// Puller): by default only when the store lacks it.
	Pull PullPolicy
	// Labels are added to the image's (--label).
	Labels map[string]string
	// StopSignal overrides the image's (--stop-signal).
	StopSignal string
	// Restart is the restart policy (--restart; restart.go).
	Restart RestartPolicy
	// Init runs a reaper as the container's pid 1 (--init).
	Init bool
	// Resources are the cgroup limits (--memory, --cpus, ...).
	Resources Resources
	// Security is what the container's root may do (--cap-add,
	// --privileged, --security-opt, --ulimit, --shm-size, ...).
	Security Security
}

// nameRE is compiled on first use, not at the start of every process.
// As docker's, it wants at least two characters.
var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`) })

// maxNameLen: a name is a file name in container-names/.
const maxNameLen = 255

// Create makes a container from o: its records, its empty layer and its
// init layer. Nothing runs yet. On error nothing is left behind.
func (r *Runner) Create(o Options) (*Container, error) {
	var img *cowcache.Image
	if o.Image != "" {
		found, err := FindImage(r.store, o.Image, o.Pull, r.puller)
		if err != nil {
			return nil, err
		}
		img = &found
	}
	var imgCfg v1.Config
	if img != nil && img.Config != nil {
		imgCfg = img.Config.Config
	}
	cfg, err := containerConfig(imgCfg, o)
	if err != nil {
		return nil, err
	}
	all, err := r.List()
	if err != nil {
		return nil, err
	}
	if ref := cfg.netContainer(); ref != "" {
		t, err := r.Get(ref)
		if err != nil {
			return nil, fmt.Errorf("no such container: %s (--network container:)", ref)
		}
		cfg.Network = "container:" + t.ID
	}
	name := o.Name
	if name == "" {
		name = generateName(all)
	} else if !nameRE().MatchString(name) {
		return nil, fmt.Errorf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	} else if len(name) > maxNameLen {
		return nil, fmt.Errorf("invalid container name %.20q...: %d characters, more than the %d allowed", name, len(name), maxNameLen)
	}
	for _, c := range all {
		if c.Name == name {
			return nil, fmt.Errorf("the container name %q is already in use by container %s: remove it or choose another name", name, c.ShortID())
		}
	}
	id := newID()
	for tries := 0; ; tries++ {
		err := r.reserveName(name, id)
		if err == nil {
			break
		}
		if o.Name != "" || tries == 10 {
			return nil, err
		}
		// A concurrent create generated the same name: another one.
		name = generateName(all)
	}
	if err := r.makeVolumes(&cfg); err != nil {
		r.releaseName(name, id)
		return nil, err
	}
	if cfg.Hostname == "" {
		cfg.Hostname = id[:12]
	}
	c := &Container{dir: r.store.ContainerDir(id)}
	c.Record = Record{ID: id, Name: name, Created: time.Now().UTC(), Config: cfg}
	if img != nil {
		c.Image = img.ID
		c.ImageName = o.Image
	}
	c.State = State{Status: StatusCreated}
	if err := r.makeDirs(c); err != nil {
		r.store.RemoveContainerDir(id)
		r.removeAnonymousVolumes(cfg.Volumes)
		releaseOwnership(id)
		r.releaseName(name, id)
		return nil, fmt.Errorf("create container: %w", err)
	}
	r.journal(c, "create")
	return c, nil
}

// reserveName takes name for container id, or says who has it, through
// the store's file for the name (created with O_EXCL: of two concurrent
// creates, one takes it). A reservation whose container does not exist (a
// create that crashed) is taken over.
func (r *Runner) reserveName(name, id string) error {
	p := r.store.ContainerNameFile(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	for i := 0; i < 2; i++ {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, err = f.WriteString(id)
			f.Close()
			return err
		}
		if !errors.Is(err, os.ErrExist) {
			return err
		}
		owner, rerr := os.ReadFile(p)
		if rerr == nil && len(owner) > 0 {
			if _, serr := os.Stat(r.store.ContainerDir(string(owner))); serr == nil || len(owner) < 12 {
				short := string(owner)
				if len(short) > 12 {
					short = short[:12]
				}
				return fmt.Errorf("the container name %q is already in use by container %s: remove it or choose another name", name, short)
			}
		}
		os.Remove(p) // stale
	}
	return fmt.Errorf("the container name %q is already in use", name)
}

// releaseName drops id's reservation of name.
func (r *Runner) releaseName(name, id string) {
	p := r.store.ContainerNameFile(name)
	if owner, err := os.ReadFile(p); err == nil && string(owner) == id {
		os.Remove(p)
	}
}

// makeDirs lays out containers/<id>; config.json comes last, so that a
// directory without one is debris (cowcache skips it).
func (r *Runner) makeDirs(c *Container) error {
	if err := os.Mkdir(c.dir, 0o700); err != nil {
		return err
	}
	if c.Config.Transient {
		// Before the record: no List sees the container unowned.
		if err := takeOwnership(c); err != nil {
			return err
		}
	}
	for _, d := range []string{c.UpperDir(), c.WorkDir(), c.Rootfs()} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	if err := makeInitLayer(c.InitDir()); err != nil {
		return err
	}
	if img, err := r.imageOf(c); err == nil && img != nil {
		matchImageDirs(c.InitDir(), r.store.LayerDirs(*img))
	}
	if err := c.saveState(); err != nil {
		return err
	}
	return c.saveRecord()
}

// makeInitLayer creates what every container root needs to mount on, as
// Docker's init layer does, so none of it lands in the container's layer.
func makeInitLayer(dir string) error {
	for _, d := range []string{"", "proc", "dev", "sys", "etc", "tmp"} {
		mode := os.FileMode(0o755)
		if d == "tmp" {
			mode = os.ModeSticky | 0o777
		}
		if err := os.Mkdir(filepath.Join(dir, d), mode); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(dir, d), mode); err != nil {
			return err
		}
	}
	for _, f := range []string{"etc/hostname", "etc/hosts", "etc/resolv.conf"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// matchImageDirs gives the init layer's directories the mode, owner and
// times the image's have, so that a directory copied up from the init
// layer (/etc when a command edits /etc/passwd) keeps the image's
// metadata in the container's layer. Best effort: without root the owner
// cannot always be set.
func matchImageDirs(initDir string, lowers []string) {
	for _, d := range []string{"proc", "dev", "sys", "etc", "tmp"} {
		for _, l := range lowers {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(l, d), &st); err != nil {
				continue
			}
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				p := filepath.Join(initDir, d)
				os.Lchown(p, int(st.Uid), int(st.Gid))
				unix.Chmod(p, st.Mode&0o7777)
				unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
			}
			break
		}
	}
}

// containerConfig applies Docker's rules to the image's config and the
// options.
func containerConfig(img v1.Config, o Options) (Config, error) {
	entrypoint := img.Entrypoint
	cmd := img.Cmd
	if o.Entrypoint != nil {
		// A new entrypoint drops the image's Cmd (docker run --entrypoint).
		entrypoint = o.Entrypoint
		cmd = nil
	}
	if o.Cmd != nil {
		cmd = o.Cmd
	}
	if err := checkEnv(o.Env); err != nil {
		return Config{}, err
	}
	args := append(append([]string{}, entrypoint...), cmd...)
	if len(args) == 0 {
		return Config{}, errors.New("no command specified: the image has no Cmd or Entrypoint; give one after the image name")
	}
	cfg := Config{
		Entrypoint:  entrypoint,
		Cmd:         cmd,
		Args:        args,
		Env:         mergeEnv(img.Env, o.Env),
		WorkDir:     img.WorkingDir,
		User:        img.User,
		Hostname:    o.Hostname,
		Network:     o.Network,
		DNS:         o.DNS,
		DNSSearch:   o.DNSSearch,
		ExtraHosts:  o.AddHosts,
		ReadOnly:    o.ReadOnly,
		TTY:         o.TTY,
		Interactive: o.Interactive,
		AutoRemove:  o.AutoRemove,
		Transient:   o.Transient,
		StopSignal:  img.StopSignal,
		Restart:     o.Restart,
		Init:        o.Init,
		Resources:   o.Resources,
		Security:    o.Security,
	}
	if err := applyLifecycle(&cfg, img, o); err != nil {
		return Config{}, err
	}
	if err := o.Resources.check(); err != nil {
		return Config{}, err
	}
	if err := o.Security.check(); err != nil {
		return Config{}, err
	}
	if o.WorkDir != "" {
		cfg.WorkDir = o.WorkDir
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = "/"
	}
	if !filepath.IsAbs(cfg.WorkDir) {
		return Config{}, fmt.Errorf("the working directory %q is invalid: it needs to be an absolute path", cfg.WorkDir)
	}
	if o.User != "" {
		cfg.User = o.User
	}
	if err := checkNetwork(&cfg, o); err != nil {
		return Config{}, err
	}
	for _, s := range o.Publish {
		p, err := parsePort(s)
		if err != nil {
			return Config{}, err
		}
		if cfg.Network == "host" {
			continue // the container's ports are the host's already
		}
		cfg.Ports = append(cfg.Ports, p)
	}
	if o.PublishAll && cfg.Network != "host" {
		for _, key := range slices.Sorted(maps.Keys(img.ExposedPorts)) {
			p, err := parsePort(key)
			if err != nil {
				return Config{}, fmt.Errorf("the image's EXPOSE %s: %w", key, err)
			}
			if !slices.ContainsFunc(cfg.Ports, func(q Port) bool { return q.Key() == p.Key() }) {
				cfg.Ports = append(cfg.Ports, p)
			}
		}
	}
	if err := addMounts(&cfg, o, img.Volumes); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// checkEnv refuses an entry without a variable name (=x), as docker.
func checkEnv(env []string) error {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == "" {
			return fmt.Errorf("invalid environment variable: %s", kv)
		}
	}
	return nil
}

// defaultPath is the PATH a container gets when its image sets none, as
// Docker's.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// mergeEnv returns base with each K=V of over replacing base's K, and a
// PATH when neither has one.
func mergeEnv(base, over []string) []string {
	out := append([]string{}, base...)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, old := range out {
			if ok, _, _ := strings.Cut(old, "="); ok == k {
				out[i], replaced = kv, true
				break
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	for _, kv := range out {
		if strings.HasPrefix(kv, "PATH=") {
			return out
		}
	}
	return append([]string{defaultPath}, out...)
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var (
	adjectives = []string{"admiring", "brave", "calm", "clever", "eager", "focused", "gallant", "happy", "jolly", "keen", "lucid", "nifty", "quirky", "serene", "stoic", "vibrant", "wizardly", "zealous"}
	scientists = []string{"babbage", "curie", "dijkstra", "euler", "feynman", "gauss", "hopper", "knuth", "lovelace", "noether", "pike", "ritchie", "shannon", "thompson", "torvalds", "turing", "wozniak"}
)

// generateName returns a Docker-style adjective_name not used by any of
// all.
func generateName(all []*Container) string {
	used := map[string]bool{}
	for _, c := range all {
		used[c.Name] = true
	}
	for i := 0; ; i++ {
		b := make([]byte, 2)
		rand.Read(b)
		name := adjectives[int(b[0])%len(adjectives)] + "_" + scientists[int(b[1])%len(scientists)]
		if i > 20 {
			name = fmt.Sprintf("%s%d", name, i)
		}
		if !used[name] {
			return name
		}
	}
}
