package network

import (
	"net/netip"
)

// Driver connects the network namespaces of containers to one network.
//
// Attach is called once per start of a container, by the process that
// holds the container (its monitor), with the pid of a process in the
// container's new network namespace. What Attach sets up belongs to the
// container until Detach(id), or until the calling process has exited,
// after which Cleanup (or the next Attach) reclaims it. Detach and Cleanup
// are idempotent: nothing to undo is no error.
type Driver interface {
	// Attach configures the network namespace of process pid for
	// container id and returns what the container got.
	Attach(id string, pid int) (*Attachment, error)
	// Detach removes what Attach set up for container id.
	Detach(id string) error
	// Cleanup removes what containers whose monitor died left behind.
	Cleanup() error
}

// Attachment is what a container got from its network, with the names of
// docker inspect's NetworkSettings.
type Attachment struct {
	Network    string       // the network's name: "bridge"
	NetworkID  string       `json:",omitempty"`
	Aliases    []string     `json:",omitempty"` // the names it has there besides its own
	IPAddress  netip.Prefix // the container's address and prefix length
	Gateway    netip.Addr   // its default route
	MacAddress string       // of its interface
	Interface  string       // its interface inside the container: eth0
	HostVeth   string       // the host's end of its veth pair
	// Nameserver, when valid, is the resolver the network provides
	// (slirp4netns's); otherwise the container gets the host's.
	Nameserver netip.Addr `json:",omitzero"`
	SlirpPid   int        `json:",omitempty"` // the container's slirp4netns process
}
