package main

import (
	"fmt"
	"os"
	"strings"
)

// Docker's management commands: `unionfuse image ls`, `container rm`,
// `volume create`, ... A group is a command whose first argument names a
// subcommand; most subcommands are the top-level commands under another
// name (image ls is images, container ls is ps).

// subcommand is one name of a group and what it runs.
type subcommand struct {
	name string
	cmd  *command
}

// newGroup returns the command name whose subcommands are subs.
func newGroup(name, usage, help string, subs []subcommand) *command {
	g := &command{name: name, usage: usage}
	g.help = help + "\n\nCommands:\n" + groupList(subs)
	g.run = func(cmd *command, args []string) int {
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
			printHelp(os.Stdout, g)
			if len(args) == 0 {
				return exitDockerUsage
			}
			return exitOK
		}
		for _, s := range subs {
			if s.name == args[0] {
				return s.cmd.run(s.cmd, args[1:])
			}
		}
		return usageError(g, "unknown command %q", args[0])
	}
	return g
}

// groupList is the Commands section of a group's help.
func groupList(subs []subcommand) string {
	var b strings.Builder
	for _, s := range subs {
		fmt.Fprintf(&b, "  %-9s %s\n", s.name, firstLine(s.cmd))
	}
	return strings.TrimRight(b.String(), "\n")
}

// firstLine is the first sentence of a command's help, on one line.
func firstLine(c *command) string {
	text := strings.Join(strings.Fields(c.help), " ")
	if i := strings.Index(text, ". "); i >= 0 {
		text = text[:i+1]
	}
	return text
}

// inspectAs is inspect limited to one kind (image inspect, container
// inspect): --type kind before the arguments.
func inspectAs(kind string) *command {
	return &command{
		name: kind + " inspect", usage: "unionfuse " + kind + " inspect [-f FORMAT] NAME|ID...",
		help: "Print a JSON array describing each " + kind + " (see 'unionfuse help inspect').",
		run: func(_ *command, args []string) int {
			return inspectCmd.run(inspectCmd, append([]string{"--type", kind}, args...))
		},
	}
}

// later is the top-level command name, looked up when it runs: a group
// names commands whether or not this build has them.
func later(name string) *command {
	return &command{name: name, help: "see 'unionfuse help " + name + "'", run: func(_ *command, args []string) int {
		c := lookup(name)
		if c == nil {
			fmt.Fprintf(os.Stderr, "unionfuse: unknown command %q (see 'unionfuse --help')\n", name)
			return exitDockerUsage
		}
		return c.run(c, args)
	}}
}

var imageGroupCmd = newGroup("image", "unionfuse image ls|rm|inspect|history|tag|pull|push|save|load|import|build|prune ...",
	"Manage images (docker's management commands: each is the top-level\ncommand of the same use, image ls is images, image rm is rmi).",
	[]subcommand{
		{"ls", imagesCmd}, {"list", imagesCmd}, {"rm", rmiCmd}, {"remove", rmiCmd}, {"inspect", inspectAs("image")},
		{"history", historyCmd}, {"tag", tagCmd}, {"pull", pullCmd}, {"push", pushCmd}, {"save", saveCmd},
		{"load", loadCmd}, {"import", importCmd}, {"build", buildCmd}, {"prune", imagePruneCmd},
	})

var containerGroupCmd = newGroup("container", "unionfuse container ls|rm|inspect|run|create|start|stop|kill|logs|exec|cp|prune ...",
	"Manage containers (docker's management commands: each is the top-level\ncommand of the same name, container ls is ps).",
	[]subcommand{
		{"ls", psCmd}, {"list", psCmd}, {"ps", psCmd}, {"rm", rmCmd}, {"remove", rmCmd}, {"inspect", inspectAs("container")},
		{"run", runCmd}, {"create", later("create")}, {"start", startCmd}, {"stop", stopCmd}, {"restart", restartCmd},
		{"kill", killCmd}, {"logs", logsCmd}, {"exec", execCmd}, {"port", portCmd}, {"wait", waitCmd},
		{"diff", diffCmd}, {"commit", commitCmd}, {"export", exportCmd}, {"cp", cpCmd},
		{"attach", later("attach")}, {"rename", later("rename")}, {"pause", later("pause")}, {"unpause", later("unpause")},
		{"top", later("top")}, {"stats", later("stats")}, {"update", later("update")}, {"prune", containerPruneCmd},
	})
