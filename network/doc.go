// Package network connects containers to networks. runner/ uses it; it
// imports nothing of unionfuse's above internal/.
//
// # Drivers
//
// A Driver attaches the network namespace of a container's init to a
// network, detaches it, and cleans up what containers that died without
// detaching left behind. The runner calls Attach from the container's
// monitor (the process that runs it: `unionfuse run`, or the monitor of a
// detached container) after the init was cloned into its new network
// namespace and before the init reads its spec, so the command starts
// with its network configured: the spec pipe is the handshake. Detach
// runs when the command has ended, on `rm`, and when a command finds the
// container's monitor dead (reap).
//
// # The root bridge driver (Bridge)
//
// As Docker's default network: a Linux bridge unionfuse0 whose address is
// the gateway (10.89.0.1/24 unless a host route overlaps it, then the next
// free /24 of 10.89-10.99), a veth pair per container (uf<12 hex digits of
// the id> on the host, enslaved to the bridge; eth0 in the container),
// the container's address and a default route through the gateway,
// ip_forward on, and outbound NAT: one masquerade rule for the subnet in
// the nftables table "ip unionfuse" (chain postrouting). Everything is
// done through netlink (vishvananda/netlink) and nf_tables
// (google/nftables), never by running ip(8) or nft(8). A kernel without
// nf_tables (an iptables-legacy-only host) fails the attach with one line.
//
// The bridge and the nftables table are shared and stay when the last
// container leaves (as docker0 does); what belongs to one container is
// its veth pair and its address. The container's end of the veth goes
// with its network namespace when its last process exits (and the kernel
// then deletes the host end too), so a killed container leaves at most a
// lease behind.
//
// # Published ports (Bridge.Publish)
//
// The runner publishes a bridge container's IPv4 ports in the kernel:
// DNAT rules in chains prerouting and output of the same table, and two
// masquerade rules (loopback sources, hairpin) in chain portpost, all
// tagged with the network and container id in their user data, deleted
// by Detach, by the reaping of a dead monitor's lease and by Cleanup.
// dnat_linux.go says why route_localnet is set on the bridge and what
// stays with the runner's user-space relay.
//
// # User-defined networks (Networks)
//
// Networks keeps the definitions of `network create` (one JSON file per
// network in DefaultConfigDir, which outlives a reboot, or in a rootless
// user's own directory); Networks.Bridge returns the Bridge driver of
// one, with a lease file of its own and its own Linux bridge (ufbr-<id>).
// AttachEndpoint takes an Endpoint: the interface (eth0, eth1... for a
// container on several networks), an address asked for, and the names
// the container has on the network, which every attach and detach writes
// into the /etc/hosts of the network's containers (hosts.go says why
// /etc/hosts and not a DNS server). writeRules rewrites the whole nftables table at every attach:
// masquerade per network but internal ones, and drops between bridges.
//
// # Rootless user-defined networks (Namespace)
//
// A rootless user with subordinate ids runs its commands as root of its
// rootless user namespace, which owns its containers' network namespaces.
// Its user-defined networks (Networks with NS set) live in one more
// network namespace of that user namespace, held by a thread of a holder
// process (the reexec role netns) that itself stays in the host's
// namespace. Bridge, unchanged, does its work there on a thread of its
// own (Namespace.do, netns_linux.go), so bridges, veths and the nftables
// table are the same as root's, out of the host's namespace. The holder
// runs one slirp4netns against its namespace thread, the way out, starts
// it again should it end (the containers keep their interfaces), and
// keeps the only write end of its exit pipe, so that it ends with the
// holder. The holder ends by itself once no live process holds a lease in
// the user's lease files, deciding under the lock that an attach holds
// from finding (or starting) it until its lease is written. An operation
// that must not start it (Detach, Cleanup, InUse) runs, when no holder
// runs, in a fresh empty namespace: nothing is there to undo, and the
// host's namespace is never touched.
//
// # The rootless driver (Slirp)
//
// As podman's rootless default: a slirp4netns process per container,
// started by the monitor against the init's network namespace (which
// belongs to the container's user namespace, so no privilege is needed)
// with --configure --mtu=65520. slirp4netns's network is fixed: tap0 with
// 10.0.2.100/24, gateway 10.0.2.2 (which is also the host's loopback),
// resolver 10.0.2.3. Attach waits for --ready-fd; the monitor holds the
// write end of --exit-fd, so slirp4netns exits when the monitor dies,
// however it dies. The process (pid and start time) and its monitor are
// recorded in the driver's state directory (the container's); Detach
// kills exactly that process, and Cleanup does when the monitor is dead.
//
// # Addresses (IPAM)
//
// Addresses are leased in a JSON file (bridge.json) under the driver's
// state directory, changed only under an exclusive flock of bridge.lock,
// and written atomically (temporary file + rename): two attaches at once
// never get one address, and a crash never leaves a half-written file.
// A lease records the container id and the process that holds it (the
// monitor: pid and start time). A lease whose process is gone is a
// leftover: every Attach and Cleanup reclaims those (and deletes their
// host interfaces), so an address survives neither its container nor its
// monitor, whether or not Detach ran.
//
// The state directory is host-wide (DefaultStateDir), not per store: the
// bridge is one per host and every store (--root) attaches to it, so its
// addresses must come from one file. It lives in /run, which is cleared
// at boot together with the bridge and every network namespace it could
// describe.
package network
