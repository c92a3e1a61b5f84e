package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/unionfuse/unionfuse/runner"
)

var portCmd = &command{
	name:  "port",
	usage: "unionfuse port CONTAINER [CONTAINERPORT[/tcp|/udp]]",
	help: `List a running container's published ports, as docker port does:
"80/tcp -> 0.0.0.0:8080" for each, or only the host side of one port.`,
	options: containerFlagsHelp("port"),
	run:     runPort,
}

func runPort(cmd *command, args []string) int {
	a := &containerArgs{}
	fset := newContainerFlags("port", a)
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageError(cmd, "want CONTAINER [CONTAINERPORT]")
	}
	want, proto := 0, "tcp"
	if len(pos) == 2 {
		num, pr, _ := strings.Cut(pos[1], "/")
		n, err := strconv.Atoi(num)
		if err != nil || pr != "" && pr != "tcp" && pr != "udp" {
			return usageError(cmd, "invalid port %q", pos[1])
		}
		want = n
		if pr != "" {
			proto = pr
		}
	}
	return a.withRunner(func(r *runner.Runner) int {
		c, err := r.Get(pos[0])
		if err != nil {
			return fail(err)
		}
		found := false
		for _, p := range c.State.Ports {
			if !c.Running() || want != 0 && (p.ContainerPort != want || p.Protocol() != proto) {
				continue
			}
			found = true
			host, _, _ := strings.Cut(p.String(), "->")
			if want != 0 {
				fmt.Println(host)
			} else {
				fmt.Printf("%s -> %s\n", p.Key(), host)
			}
		}
		if want != 0 && !found {
			return fail(fmt.Errorf("no public port '%d/%s' published for %s", want, proto, pos[0]))
		}
		return exitOK
	})
}
