package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/internal/format"
	"github.com/unionfuse/unionfuse/network"
	"github.com/unionfuse/unionfuse/runner"
)

var networkCmd = &command{
	name: "network",
	usage: "unionfuse network create [--subnet CIDR] [--gateway IP] [--internal] [--label K=V] NAME |\n" +
		"       ls [-q] [--filter K=V] [--format F] | inspect [-f F] NAME... | rm NAME... | prune [-f] |\n" +
		"       connect [--alias A] [--ip IP] NETWORK CONTAINER | disconnect NETWORK CONTAINER",
	help: `Manage networks, as docker network does. 'bridge' is the default network
(the root bridge unionfuse0; rootless, each container's slirp4netns);
'none' and 'host' are always there too. User-defined networks are bridges
of their own: their containers reach each other by name, by
--network-alias and by short id (through their /etc/hosts, kept
current; see docs/network.md) and not the containers of other networks.
Without root they need subordinate ids (/etc/subuid, /etc/subgid), and
live in a network namespace of the user's own, with one slirp4netns.

  create NAME    a network: --subnet CIDR (default: the first free /24 of
                 10.89.1-255.0), --gateway IP (default: the subnet's first
                 address), --internal (no route out), --label K=V
  ls             NETWORK ID, NAME, DRIVER, SCOPE; -q ids only; --filter
                 name=, id=, driver=, label=K[=V], type=custom|builtin;
                 --format a Go template (.ID .Name .Driver .Scope
                 .Internal .Labels .CreatedAt) or json
  inspect NAME   docker's JSON, with the containers attached now
  rm NAME        refused while a container is attached
  prune          remove every user-defined network no container is on
  connect        put a container on a network too (now if it runs)
  disconnect     take it off`,
	options: optionsOf(networkFlags),
	run:     runNetwork,
}

type networkArgs struct {
	containerArgs
	subnet, gateway, ip, format string
	internal, quiet, force      bool
	labels, filters, aliases    []string
}

// dockerShortF gives -f the meaning docker's subcommand gives it: ls's
// -f is --filter (the flag set's), inspect's --format, prune's --force.
// The subcommand is the first argument that is not a flag.
func dockerShortF(args []string) []string {
	i := slices.IndexFunc(args, func(s string) bool { return !strings.HasPrefix(s, "-") })
	long := map[string]string{"inspect": "--format", "prune": "--force"}
	if i < 0 || long[args[i]] == "" {
		return args
	}
	out := slices.Clone(args)
	for j, s := range out {
		if s == "-f" {
			out[j] = long[args[i]]
		}
	}
	return out
}

func networkFlags() (*pflag.FlagSet, *networkArgs) {
	a := &networkArgs{}
	fset := newContainerFlags("network", &a.containerArgs)
	fset.StringVar(&a.subnet, "subnet", "", "create: the network's `CIDR`")
	fset.StringVar(&a.gateway, "gateway", "", "create: the gateway's `IP`")
	fset.BoolVar(&a.internal, "internal", false, "create: no route out of the network")
	fset.StringArrayVar(&a.labels, "label", nil, "create: a `K=V` label")
	fset.BoolVarP(&a.quiet, "quiet", "q", false, "ls: ids only")
	fset.StringArrayVarP(&a.filters, "filter", "f", nil, "ls: `K=V` (name, id, driver, label, type); inspect's -f is --format and prune's --force, as docker's")
	fset.StringVar(&a.format, "format", "", "ls, inspect: a Go `TEMPLATE`, or json")
	fset.BoolVar(&a.force, "force", false, "prune: do not ask (accepted; prune never asks)")
	fset.StringArrayVar(&a.aliases, "alias", nil, "connect: a network-scoped `ALIAS`")
	fset.StringVar(&a.ip, "ip", "", "connect: the container's `IP` on the network")
	return fset, a
}

func runNetwork(cmd *command, args []string) int {
	args = dockerShortF(args)
	fset, a := networkFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) < 1 {
		return usageError(cmd, "want create, ls, inspect, rm, prune, connect or disconnect")
	}
	sub, pos := pos[0], pos[1:]
	switch {
	case sub == "create" && len(pos) == 1:
		return a.create(pos[0])
	case (sub == "ls" || sub == "list") && len(pos) == 0:
		return a.list(cmd)
	case sub != "ls" && sub != "list" && len(a.filters) > 0:
		return usageError(cmd, "--filter is an option of network ls alone")
	case sub == "inspect" && len(pos) > 0:
		return a.inspect(cmd, pos)
	case (sub == "rm" || sub == "remove") && len(pos) > 0:
		code := exitOK
		for _, ref := range pos {
			if _, err := runner.RemoveNetwork(ref); err != nil {
				code = fail(err)
				continue
			}
			fmt.Println(ref)
		}
		return code
	case sub == "prune" && len(pos) == 0:
		removed, err := runner.PruneNetworks()
		if err != nil {
			return fail(err)
		}
		if len(removed) > 0 {
			fmt.Println("Deleted Networks:\n" + strings.Join(removed, "\n"))
		}
		return exitOK
	case (sub == "connect" || sub == "disconnect") && len(pos) == 2:
		return a.withRunner(func(r *runner.Runner) int {
			c, err := r.Get(pos[1])
			if err != nil {
				return fail(err)
			}
			if sub == "connect" {
				err = r.Connect(c, pos[0], a.aliases, a.ip)
			} else {
				err = r.Disconnect(c, pos[0])
			}
			if err != nil {
				return fail(err)
			}
			return exitOK
		})
	}
	return usageError(cmd, "want create NAME, ls, inspect NAME..., rm NAME..., prune, connect NETWORK CONTAINER or disconnect NETWORK CONTAINER")
}

func (a *networkArgs) create(name string) int {
	n := &network.Config{Name: name, Internal: a.internal}
	var err error
	if a.subnet != "" {
		if n.Subnet, err = netip.ParsePrefix(a.subnet); err != nil {
			return fail(fmt.Errorf("invalid subnet %s: want a CIDR such as 10.89.5.0/24", a.subnet))
		}
	}
	if a.gateway != "" {
		if n.Gateway, err = netip.ParseAddr(a.gateway); err != nil {
			return fail(fmt.Errorf("invalid gateway %s: not an IP address", a.gateway))
		}
	}
	for _, kv := range a.labels {
		k, v, _ := strings.Cut(kv, "=")
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[k] = v
	}
	if err := runner.CreateNetwork(n); err != nil {
		return fail(err)
	}
	fmt.Println(n.ID)
	return exitOK
}

// networkRow is a line of network ls, with docker's field names.
type networkRow struct {
	ID, Name, Driver, Scope, CreatedAt string
	Internal                           bool
	Labels                             string
}

var networkHeader = map[string]string{"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
	"CreatedAt": "CREATED AT", "Internal": "INTERNAL", "Labels": "LABELS"}

func (a *networkArgs) list(cmd *command) int {
	nets, err := runner.Networks().List()
	if err != nil {
		return fail(err)
	}
	tmpl := "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
	if !format.IsDefault(a.format) {
		tmpl = a.format
	}
	if a.quiet {
		tmpl = "{{.ID}}"
	}
	out, err := format.New(os.Stdout, tmpl, networkHeader)
	if err != nil {
		return usageError(cmd, "%v", err)
	}
	for _, n := range nets {
		ok, err := networkMatches(n, a.filters)
		if err != nil {
			return usageError(cmd, "%v", err)
		}
		if !ok {
			continue
		}
		var labels []string
		for k, v := range n.Labels {
			labels = append(labels, k+"="+v)
		}
		created := ""
		if !n.Created.IsZero() {
			created = n.Created.Format("2006-01-02 15:04:05 -0700 MST")
		}
		out.Write(networkRow{ID: n.ID[:12], Name: n.Name, Driver: n.Driver, Scope: "local", CreatedAt: created,
			Internal: n.Internal, Labels: strings.Join(labels, ",")})
	}
	if err := out.Flush(); err != nil {
		return fail(err)
	}
	return exitOK
}

// networkMatches reports whether n meets every --filter term.
func networkMatches(n *network.Config, filters []string) (bool, error) {
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return false, fmt.Errorf("invalid filter %q (want KEY=VALUE, KEY one of name, id, driver, label, type)", f)
		}
		var match bool
		switch k {
		case "name":
			match = strings.Contains(n.Name, v)
		case "id":
			match = strings.HasPrefix(n.ID, v)
		case "driver":
			match = n.Driver == v
		case "label":
			lk, lv, hasV := strings.Cut(v, "=")
			got, has := n.Labels[lk]
			match = has && (!hasV || got == lv)
		case "type":
			match = (v == "builtin") == (n.Name == network.DefaultName)
		default:
			return false, fmt.Errorf("invalid filter %q (want KEY=VALUE, KEY one of name, id, driver, label, type)", f)
		}
		if !match {
			return false, nil
		}
	}
	return true, nil
}

func (a *networkArgs) inspect(cmd *command, refs []string) int {
	var tmpl *format.Writer
	if a.format != "" {
		w, err := format.New(os.Stdout, a.format, nil)
		if err != nil {
			return usageError(cmd, "%v", err)
		}
		tmpl = w
	}
	var out []networkInspect
	code := exitOK
	a.withRunner(func(r *runner.Runner) int {
		names := map[string]string{}
		if all, err := r.List(); err == nil {
			for _, c := range all {
				names[c.ID] = c.Name
			}
		}
		for _, ref := range refs {
			n, err := runner.Networks().Get(ref)
			if err != nil {
				code = fail(err)
				continue
			}
			out = append(out, inspectNetwork(n, names))
		}
		return exitOK
	})
	if tmpl != nil {
		for _, n := range out {
			if err := tmpl.Write(n); err != nil {
				return fail(err)
			}
		}
		tmpl.Flush()
		return code
	}
	b, _ := json.MarshalIndent(out, "", "    ")
	if out == nil {
		b = []byte("[]")
	}
	fmt.Println(string(b))
	return code
}
