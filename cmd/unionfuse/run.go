package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/runner"
)

var runCmd = &command{
	name:  "run",
	usage: "unionfuse run [OPTIONS] IMAGE [COMMAND [ARG...]]",
	help: `Run a command in a new container: a copy-on-write layer of its own over
IMAGE's layers, mounted with unionfuse, and the command in new mount, pid,
uts, ipc and network namespaces with that mount as its root. The exit
status is the command's (125: unionfuse failed, 126: the command cannot
be executed, 127: it was not found).

Without root the container runs in a user namespace where the caller is
root: files it creates as root belong to the caller on the host, and
only root exists inside (other users in the image cannot be taken).
The network is 'bridge' (as docker's: an address of its own, outbound
connections through the host; rootless through slirp4netns) unless
--network says none, host, container:NAME or a network made with
'unionfuse network create'. A rootless container gets 'none' when
slirp4netns cannot run here (not installed, or /dev/net/tun closed to
the user; 'unionfuse inspect' shows the NetworkMode it got).
-p HOSTPORT:CONTAINERPORT relays connections to the host's port to that
port of the container's loopback (a server in the container listening on
0.0.0.0 or 127.0.0.1); with --network host the ports are the host's
already and -p is ignored, with a warning.
With -d the container runs in the background, its output in a log
('unionfuse logs'); stop it with 'unionfuse stop'.
An IMAGE the store lacks is pulled from its registry first, as docker
does (--pull says when; see docs/registry.md).`,
	options: optionsOf(runFlags),
	run:     runRun,
}

// runArgs are the flags of run (and, in part, create).
type runArgs struct {
	storeFlags
	netFlags
	autoPullFlags
	lifecycleFlags
	resourceFlags
	securityFlags
	volumeFlags
	rm, detach, interactive, tty, readOnly bool
	publishAll                             bool
	name, workdir, user, entrypoint        string
	hostname, network                      string
	env, envFiles, publish                 []string
	entrypointSet                          bool
}

func runFlags() (*pflag.FlagSet, *runArgs) {
	a := &runArgs{}
	fset := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fset.SetInterspersed(false) // flags after IMAGE belong to the command
	a.storeFlags.add(fset)
	a.autoPullFlags.add(fset, false)
	fset.BoolVar(&a.rm, "rm", false, "remove the container when it exits")
	fset.BoolVarP(&a.detach, "detach", "d", false, "run in the background and print the container id")
	fset.BoolVarP(&a.interactive, "interactive", "i", false, "keep stdin open")
	fset.BoolVarP(&a.tty, "tty", "t", false, "allocate a pseudo-terminal")
	fset.BoolVar(&a.readOnly, "read-only", false, "mount the container's root read-only")
	fset.StringVar(&a.name, "name", "", "the container's `NAME` (default: generated)")
	fset.StringVarP(&a.workdir, "workdir", "w", "", "the working `DIR` inside the container")
	fset.StringVarP(&a.user, "user", "u", "", "run as `USER` (name|uid[:group|gid])")
	fset.StringVar(&a.entrypoint, "entrypoint", "", "override the image's entrypoint with `CMD`")
	fset.StringVarP(&a.hostname, "hostname", "h", "", "the container's host `NAME` (default: its short id; help is --help)")
	fset.StringVar(&a.network, "network", "", "`NETWORK`: bridge (the default), none (private loopback), host, container:NAME or a network's name")
	a.networkFlags(fset)
	fset.BoolVarP(&a.publishAll, "publish-all", "P", false, "publish every port the image EXPOSEs on a random host port")
	fset.StringArrayVar(&a.aliases, "network-alias", nil, "a network-scoped `ALIAS` (user-defined networks)")
	fset.StringVar(&a.ip, "ip", "", "the container's `IP` on its user-defined network")
	a.lifecycleFlags.add(fset)
	a.resourceFlags.add(fset, false)
	a.securityFlags.add(fset)
	fset.StringArrayVarP(&a.env, "env", "e", nil, "set `K=V` (K alone takes the value from this environment)")
	fset.StringArrayVar(&a.envFiles, "env-file", nil, "read K=V lines from `FILE`")
	a.volumeFlags.add(fset)
	fset.StringArrayVarP(&a.publish, "publish", "p", nil, "publish `[IP:]HOSTPORT:CONTAINERPORT[/udp]` of the container's loopback on the host")
	return fset, a
}

func runRun(cmd *command, args []string) int {
	fset, a := runFlags()
	r, c, done, code := createFromFlags(cmd, fset, a, args)
	if c == nil {
		return code
	}
	defer done()
	if a.detach {
		if err := r.StartDetached(c); err != nil {
			r.Remove(c, true)
			return failRun(err)
		}
		fmt.Println(c.ID)
		return exitOK
	}
	stdio, stop := attachedIO(true)
	defer stop()
	code, err := r.Run(c, stdio)
	if err != nil {
		var ee *runner.ExitError
		if errors.As(err, &ee) && !a.rm {
			// The command never ran: leave nothing behind.
			r.Remove(c, true)
		}
		return failRun(err)
	}
	return code
}

// createFromFlags parses the command line of run or create and creates
// the container; c is nil when that failed, with the exit status in code.
// done closes the store.
func createFromFlags(cmd *command, fset *pflag.FlagSet, a *runArgs, args []string) (r *runner.Runner, c *runner.Container, done func(), code int) {
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return nil, nil, nil, code
	}
	if len(pos) < 1 {
		return nil, nil, nil, usageError(cmd, "want IMAGE [COMMAND...]")
	}
	a.entrypointSet = fset.Changed("entrypoint")
	if a.network == "host" && len(a.publish) > 0 {
		fmt.Fprintln(os.Stderr, "WARNING: Published ports are discarded when using host network mode")
	}
	opts, err := a.options(pos)
	if err == nil {
		err = a.checkCidfile()
	}
	if err != nil {
		return nil, nil, nil, failRun(err)
	}
	s, err := a.open()
	if err != nil {
		return nil, nil, nil, failRun(err)
	}
	r = runner.New(s).WithPuller(a.puller(s, os.Stderr, true))
	c, err = r.Create(opts)
	if err == nil {
		if err = a.writeCidfile(c.ID); err != nil {
			r.Remove(c, true)
		}
	}
	if err != nil {
		s.Close()
		return nil, nil, nil, failRun(err)
	}
	return r, c, func() { s.Close() }, 0
}

// options turns the flags and IMAGE [COMMAND...] into runner options.
func (a *runArgs) options(pos []string) (runner.Options, error) {
	o := runner.Options{
		Image: pos[0], Name: a.name, WorkDir: a.workdir, User: a.user,
		Publish: a.publish, Network: a.network, Hostname: a.hostname,
		ReadOnly: a.readOnly, TTY: a.tty, Interactive: a.interactive, AutoRemove: a.rm,
		DNS: a.dns, DNSSearch: a.dnsSearch, AddHosts: a.addHosts, Pull: a.pull.policy,
		NetworkAliases: a.aliases, IP: a.ip, PublishAll: a.publishAll,
	}
	a.volumeFlags.apply(&o)
	if len(pos) > 1 {
		o.Cmd = pos[1:]
	}
	if err := a.lifecycleFlags.apply(&o); err != nil {
		return o, err
	}
	var err error
	if o.Resources, err = a.resources(); err != nil {
		return o, err
	}
	if o.Security, err = a.security(); err != nil {
		return o, err
	}
	if a.entrypointSet {
		o.Entrypoint = []string{}
		if a.entrypoint != "" {
			o.Entrypoint = []string{a.entrypoint}
		}
	}
	for _, f := range a.envFiles {
		kvs, err := readEnvFile(f)
		if err != nil {
			return o, err
		}
		o.Env = append(o.Env, kvs...)
	}
	for _, kv := range a.env {
		o.Env = append(o.Env, expandEnv(kv)...)
	}
	return o, nil
}

// expandEnv turns -e K into K=<value here> (nothing when unset), as docker.
func expandEnv(kv string) []string {
	if strings.Contains(kv, "=") {
		return []string{kv}
	}
	if v, ok := os.LookupEnv(kv); ok {
		return []string{kv + "=" + v}
	}
	return nil
}

// readEnvFile reads an --env-file: K=V lines, # comments and blank lines
// skipped, a bare K taken from this environment.
func readEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("env file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "=") {
			return nil, fmt.Errorf("env file %s:%d: no variable name in %q", path, n, line)
		}
		out = append(out, expandEnv(line)...)
	}
	return out, sc.Err()
}

// failRun prints err as docker run does and returns its exit status: the
// runner's (ExitCannotInvoke, ExitNotFound) for a command that could not
// start, ExitUnionfuseFailed otherwise.
func failRun(err error) int {
	fail(err)
	var ee *runner.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return runner.ExitUnionfuseFailed
}
