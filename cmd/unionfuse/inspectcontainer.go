package main

import (
	"strconv"
	"strings"
	"time"

	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/runner"
)

// This file holds docker's container inspect object, with docker's JSON
// names (its api/types/container.InspectResponse), filled from a
// container's record and state.

// containerInspect is docker's container inspect object, the fields
// unionfuse has. Go field names are the JSON names, so that templates
// name them as docker's do ({{.State.Pid}}, {{.Id}}).
type containerInspect struct {
	Id              string //nolint:revive // docker's name, for templates
	Created         string
	Path            string
	Args            []string
	State           containerState
	Image           string
	ResolvConfPath  string
	HostnamePath    string
	HostsPath       string
	LogPath         string
	Name            string
	RestartCount    int
	Driver          string
	Platform        string
	MountLabel      string
	ProcessLabel    string
	AppArmorProfile string
	HostConfig      hostConfig
	GraphDriver     graphDriver
	Mounts          []mountPoint
	Config          containerConfig
	NetworkSettings networkSettings
}

// containerState is docker's State.
type containerState struct {
	Status     string
	Running    bool
	Paused     bool
	Restarting bool
	OOMKilled  bool
	Dead       bool
	Pid        int
	ExitCode   int
	Error      string
	StartedAt  string
	FinishedAt string
}

// hostConfig is the part of docker's HostConfig unionfuse has.
type hostConfig struct {
	Binds          []string
	Tmpfs          map[string]string `json:",omitempty"`
	NetworkMode    string
	PortBindings   map[string][]portBinding
	RestartPolicy  restartPolicy
	Init           bool
	AutoRemove     bool
	ReadonlyRootfs bool
	hostResources  // inspectlimits.go
}

type restartPolicy struct {
	Name              string
	MaximumRetryCount int
}

type portBinding struct {
	HostIp   string //nolint:revive // docker's name
	HostPort string
}

// containerConfig is docker's Config of a container.
type containerConfig struct {
	Hostname     string
	Domainname   string
	User         string
	AttachStdin  bool
	AttachStdout bool
	AttachStderr bool
	ExposedPorts map[string]struct{} `json:",omitempty"`
	Tty          bool
	OpenStdin    bool
	StdinOnce    bool
	Env          []string
	Cmd          []string
	Image        string
	Volumes      map[string]struct{}
	WorkingDir   string
	Entrypoint   []string
	Labels       map[string]string
	StopSignal   string `json:",omitempty"`
}

// networkSettings is the part of docker's NetworkSettings unionfuse has:
// the first network's address at the top, as docker's.
type networkSettings struct {
	Ports       map[string][]portBinding
	IPAddress   string
	IPPrefixLen int
	Gateway     string
	MacAddress  string
	Networks    map[string]endpointSettings
}

// endpointSettings is one entry of docker's NetworkSettings.Networks.
type endpointSettings struct {
	Aliases     []string
	NetworkID   string
	EndpointID  string
	Gateway     string
	IPAddress   string
	IPPrefixLen int
	MacAddress  string
}

// networkSettingsOf fills ns with what c got from its networks while it
// runs (an entry without addresses for each network while it does not).
func networkSettingsOf(ns *networkSettings, c *runner.Container) {
	ns.Networks = map[string]endpointSettings{}
	for _, ep := range c.Config.Networks {
		ns.Networks[ep.Network] = endpointSettings{Aliases: ep.Aliases}
	}
	if n := c.Config.Network; len(c.Config.Networks) == 0 && (n == "none" || n == "host") {
		ns.Networks[n] = endpointSettings{}
	}
	if !c.Running() {
		return
	}
	for i, att := range c.State.Networks {
		es := endpointSettings{
			Aliases: att.Aliases, NetworkID: att.NetworkID, EndpointID: c.ID, Gateway: att.Gateway.String(),
			IPAddress: att.IPAddress.Addr().String(), IPPrefixLen: att.IPAddress.Bits(), MacAddress: att.MacAddress,
		}
		ns.Networks[att.Network] = es
		if i == 0 {
			ns.IPAddress, ns.IPPrefixLen, ns.Gateway, ns.MacAddress = es.IPAddress, es.IPPrefixLen, es.Gateway, es.MacAddress
		}
	}
}

// dockerTime formats a time as docker's inspect: RFC 3339 with
// nanoseconds, "0001-01-01T00:00:00Z" when unset.
func dockerTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// inspectContainer is c as docker container inspect shows it.
func inspectContainer(s *cowcache.Store, c *runner.Container) containerInspect {
	cfg := c.Config
	ci := containerInspect{
		Id: c.ID, Created: dockerTime(c.Created), Image: string(c.Image),
		LogPath: c.LogPath(), Name: "/" + c.Name, Driver: "unionfuse", Platform: "linux",
		State: containerState{
			Status: string(c.Status()), Running: c.Running(), Paused: c.Paused(), Pid: c.State.Pid, ExitCode: c.State.ExitCode,
			Error: c.State.Error, OOMKilled: c.State.OOMKilled, StartedAt: dockerTime(c.State.StartedAt), FinishedAt: dockerTime(c.State.FinishedAt),
		},
		HostConfig: hostConfig{
			Binds: []string{}, NetworkMode: cfg.Network, PortBindings: map[string][]portBinding{},
			RestartPolicy: restartPolicy{Name: "no"}, Init: cfg.Init, AutoRemove: cfg.AutoRemove, ReadonlyRootfs: cfg.ReadOnly,
		},
		GraphDriver: graphDriver{Name: "unionfuse", Data: map[string]string{
			"UpperDir": c.UpperDir(), "WorkDir": c.WorkDir(), "MergedDir": c.Rootfs(), "LowerDir": c.InitDir(),
		}},
		Mounts: []mountPoint{},
		Config: containerConfig{
			Hostname: cfg.Hostname, User: cfg.User, AttachStdin: cfg.Interactive, AttachStdout: true, AttachStderr: true,
			Tty: cfg.TTY, OpenStdin: cfg.Interactive, StdinOnce: cfg.Interactive, Env: cfg.Env, Cmd: cfg.Cmd,
			Image: imageColumn(c), WorkingDir: cfg.WorkDir, Entrypoint: cfg.Entrypoint, Labels: map[string]string{},
			StopSignal: cfg.StopSignal,
		},
		NetworkSettings: networkSettings{Ports: map[string][]portBinding{}},
	}
	ci.HostConfig.hostResources = hostResourcesOf(cfg)
	networkSettingsOf(&ci.NetworkSettings, c)
	if len(cfg.Args) > 0 {
		ci.Path, ci.Args = cfg.Args[0], cfg.Args[1:]
	}
	ci.RestartCount = c.State.RestartCount
	if cfg.Labels != nil {
		ci.Config.Labels = cfg.Labels
	}
	if !cfg.Restart.IsZero() {
		ci.HostConfig.RestartPolicy = restartPolicy{Name: cfg.Restart.Name, MaximumRetryCount: cfg.Restart.MaximumRetryCount}
	}
	if ci.Args == nil {
		ci.Args = []string{}
	}
	if c.Image != "" {
		ci.Image = c.Image.String()
		if img, err := s.Image(string(c.Image)); err == nil {
			ci.GraphDriver.Data["LowerDir"] = strings.Join(append([]string{c.InitDir()}, s.LayerDirs(img)...), ":")
			if img.Config != nil && img.Config.Config.Labels != nil && cfg.Labels == nil {
				ci.Config.Labels = img.Config.Config.Labels
			}
		}
	}
	ci.HostConfig.Binds, ci.HostConfig.Tmpfs, ci.Mounts = mountsOf(cfg.Volumes)
	for _, p := range cfg.Ports {
		key := p.Key()
		ci.HostConfig.PortBindings[key] = append(ci.HostConfig.PortBindings[key], portBinding{HostIp: p.HostIP, HostPort: hostPort(p)})
		if ci.Config.ExposedPorts == nil {
			ci.Config.ExposedPorts = map[string]struct{}{}
		}
		ci.Config.ExposedPorts[key] = struct{}{}
	}
	if c.Running() {
		for _, p := range c.State.Ports {
			key := p.Key()
			ip := p.HostIP
			if ip == "" {
				ip = "0.0.0.0"
			}
			ci.NetworkSettings.Ports[key] = append(ci.NetworkSettings.Ports[key], portBinding{HostIp: ip, HostPort: strconv.Itoa(p.HostPort)})
		}
	}
	return ci
}

// hostPort is a port binding's host port as docker records it: "" when
// the kernel picks one.
func hostPort(p runner.Port) string {
	if p.HostPort == 0 {
		return ""
	}
	return strconv.Itoa(p.HostPort)
}
