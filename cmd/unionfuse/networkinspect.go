package main

import (
	"strconv"

	"github.com/unionfuse/unionfuse/network"
	"github.com/unionfuse/unionfuse/runner"
)

// networkInspect is docker network inspect's object.
type networkInspect struct {
	Name       string
	Id         string
	Created    string
	Scope      string
	Driver     string
	EnableIPv6 bool
	IPAM       networkIPAM
	Internal   bool
	Attachable bool
	Ingress    bool
	ConfigOnly bool
	Containers map[string]networkEndpoint
	Options    map[string]string
	Labels     map[string]string
}

type networkIPAM struct {
	Driver  string
	Options map[string]string
	Config  []ipamConfig
}

type ipamConfig struct {
	Subnet  string
	Gateway string
}

type networkEndpoint struct {
	Name        string
	EndpointID  string
	MacAddress  string
	IPv4Address string
	IPv6Address string
}

// inspectNetwork is n as docker network inspect shows it; names are the
// names of the store's containers by id (others show their id).
func inspectNetwork(n *network.Config, names map[string]string) networkInspect {
	ni := networkInspect{
		Name: n.Name, Id: n.ID, Created: dockerTime(n.Created), Scope: "local", Driver: n.Driver,
		IPAM:     networkIPAM{Driver: "default", Options: map[string]string{}, Config: []ipamConfig{}},
		Internal: n.Internal, Containers: map[string]networkEndpoint{}, Options: map[string]string{}, Labels: n.Labels,
	}
	if ni.Labels == nil {
		ni.Labels = map[string]string{}
	}
	if n.Name == network.DefaultName && runner.DefaultNetworkIsBridge() {
		ni.Options["com.docker.network.bridge.name"] = network.BridgeName
	}
	if n.Subnet.IsValid() {
		ni.IPAM.Config = append(ni.IPAM.Config, ipamConfig{Subnet: n.Subnet.String(), Gateway: n.Gateway.String()})
	}
	if n.Name == network.DefaultName && !runner.DefaultNetworkIsBridge() {
		return ni // slirp4netns: each container has a network of its own
	}
	leases, subnet, err := runner.Networks().Bridge(n).Leases()
	if err != nil {
		return ni
	}
	for a, le := range leases {
		name := names[le.ID]
		if name == "" {
			name = le.ID[:12]
		}
		ni.Containers[le.ID] = networkEndpoint{Name: name, EndpointID: le.ID, MacAddress: network.MacAddress(a),
			IPv4Address: a.String() + "/" + strconv.Itoa(subnet.Bits())}
	}
	return ni
}
