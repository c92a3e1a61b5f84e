// Command network measures container networking (issue 14): TCP
// throughput and connection latency from a container to a server on the
// host, and from the host to a container's published port, plus the wall
// time of `run --rm IMAGE true` with the default network and with
// --network none. Systems, side by side on this machine:
//
//   - host loopback: the ceiling, no container
//   - unionfuse as root: the root bridge (unionfuse0, veth, nftables)
//   - podman 4.3 as root (--runtime runc --cgroup-manager cgroupfs): the
//     CNI bridge, published ports by the portmap plugin's DNAT
//   - unionfuse as uid 65534: slirp4netns, published ports by its relay
//   - podman as uid 65534 (subordinate ids bound over /etc/subuid in a
//     mount namespace of its own, as tests/ do): slirp4netns with
//     allow_host_loopback, published ports by rootlesskit's port driver
//   - both as uid 65534 with subordinate ids on a user-defined network:
//     the user's own network namespace with a bridge and one slirp4netns
//     (unionfuse's netns holder, podman's rootless-netns)
//
// The container side is nettool (bench/network/nettool), a static binary
// added to a busybox image that every system imports, so the path is
// measured rather than busybox nc. Rounds interleave the systems (in a
// rotating order) so that the load of a shared machine hits all of them
// alike; every cell is the median over rounds with the range. Each
// podman gets its own store and configuration in a temporary directory;
// nothing global is changed beyond what the engines themselves do
// (bridges, nftables/iptables rules) and all is removed at the end.
//
//	go run ./bench/network [-unionfuse bin/unionfuse] [-rounds 5] [-mib 256] [-pings 200] [-runs 11]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/unionfuse/unionfuse/bench/network/wire"
)

var (
	unionfuse   = flag.String("unionfuse", "bin/unionfuse", "the unionfuse binary")
	rounds      = flag.Int("rounds", 5, "rounds of the network measurements")
	mib         = flag.Int("mib", 256, "MiB sent per throughput measurement")
	pings       = flag.Int("pings", 200, "connections per latency measurement")
	runs        = flag.Int("runs", 11, "run --rm true per system and network")
	publishIP   = flag.String("publish-ip", "127.0.0.1", "the host address ports are published on and reached through")
	skipPodman  = flag.Bool("no-podman", false, "leave podman out")
	skipRootles = flag.Bool("no-rootless", false, "leave the rootless systems out")
	only        = flag.String("only", "", "measure only: net or run")
	pick        = flag.String("systems", "", "measure only the systems whose names contain this")
	baseline    = flag.String("baseline", "", "another unionfuse binary (an earlier build) measured as root beside -unionfuse")
)

// nobody is the unprivileged user of the rootless systems.
const nobody = 65534

// system is one engine in one mode.
type system struct {
	name    string
	cmd     func(args ...string) *exec.Cmd // the engine's CLI
	image   string
	netOpts []string // run options selecting the measured default network
	rmNow   []string // the command removing a running container at once
	noTime  string   // why run --rm true is not timed, "" when it is
	listen  string   // host address the servers for containers listen on
	target  string   // that address as containers dial it
	cleanup func()
}

// run returns the engine's `run --rm [opts] IMAGE argv...`.
func (s *system) run(opts []string, argv ...string) *exec.Cmd {
	args := append(append([]string{"run", "--rm"}, opts...), s.image)
	return s.cmd(append(args, argv...)...)
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("netbench: ")
	if os.Getuid() != 0 {
		log.Fatal("needs root")
	}
	bin, err := filepath.Abs(*unionfuse)
	must(err)
	dir, err := os.MkdirTemp("", "netbench-")
	must(err)
	os.Chmod(dir, 0o755) // the rootless systems live below
	var systems []*system
	defer func() {
		for _, s := range systems {
			s.cleanup()
		}
		os.RemoveAll(dir)
	}()
	tarball := filepath.Join(dir, "busybox.tar.gz")
	must(makeImage(dir, tarball))

	add := func(s *system, err error) {
		if err != nil {
			log.Printf("leaving out %s: %v", s.name, err)
			if s != nil && s.cleanup != nil {
				s.cleanup()
			}
			return
		}
		if !strings.Contains(s.name, *pick) {
			s.cleanup()
			return
		}
		systems = append(systems, s)
	}
	add(unionfuseRoot(dir, bin, tarball, "unionfuse, root bridge"))
	if *baseline != "" {
		base, err := filepath.Abs(*baseline)
		must(err)
		add(unionfuseRoot(dir, base, tarball, "unionfuse "+filepath.Base(base)+", root bridge"))
	}
	if !*skipPodman {
		add(podmanRoot(dir, tarball))
	}
	if !*skipRootles {
		add(unionfuseRootless(dir, bin, tarball))
		if !*skipPodman {
			add(podmanRootless(dir, tarball, false))
		}
		add(unionfuseRootlessUserNet(dir, bin, tarball))
		if !*skipPodman {
			add(podmanRootless(dir, tarball, true))
		}
	}
	for _, s := range systems {
		if s.target == "" {
			continue
		}
		// The first run of each pays for first starts; not measured.
		s.run(s.netOpts, "true").Run()
	}
	fmt.Printf("Load average at the start: %s\n\n", loadavg())
	if *only != "run" {
		netTable(systems)
	}
	if *only != "net" {
		runTable(systems)
	}
	fmt.Printf("\nLoad average at the end: %s\n", loadavg())
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// makeImage writes a busybox root filesystem with nettool as tarball.
func makeImage(dir, tarball string) error {
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("needs busybox-static (make deps): %w", err)
	}
	if out, err := exec.Command("cp", bb, filepath.Join(root, "bin", "busybox")).CombinedOutput(); err != nil {
		return fmt.Errorf("cp busybox: %v: %s", err, out)
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return err
	}
	for _, a := range strings.Fields(string(list)) {
		if a != "busybox" {
			os.Symlink("busybox", filepath.Join(root, "bin", a))
		}
	}
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\n"), 0o644)
	build := exec.Command("go", "build", "-o", filepath.Join(root, "bin", "nettool"), "github.com/unionfuse/unionfuse/bench/network/nettool")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build nettool: %v: %s", err, out)
	}
	if out, err := exec.Command("tar", "-C", root, "-czf", tarball, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("tar: %v: %s", err, out)
	}
	return os.Chmod(tarball, 0o644)
}

// gatewayOf sets s's addresses from the default route of a container.
func gatewayOf(s *system) error {
	out, err := s.run(s.netOpts, "ip", "route").CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip route in a container: %v: %s", err, out)
	}
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "via" && i+1 < len(f) {
			s.target = f[i+1]
			if s.listen == "" {
				s.listen = s.target
			}
			return nil
		}
	}
	return fmt.Errorf("no default route in a container: %s", out)
}

// asNobody returns argv run as uid and gid 65534 without groups.
func asNobody(argv ...string) []string {
	return append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}, argv...)
}

func command(env []string, argv ...string) *exec.Cmd {
	c := exec.Command(argv[0], argv[1:]...)
	c.Env = append(os.Environ(), env...)
	return c
}

func unionfuseRoot(dir, bin, tarball, name string) (*system, error) {
	store, err := os.MkdirTemp(dir, "uf-root-")
	if err != nil {
		return &system{name: name}, err
	}
	s := &system{name: name, image: "busybox", rmNow: []string{"rm", "-f"}}
	s.cmd = func(args ...string) *exec.Cmd {
		return command([]string{"UNIONFUSE_ROOT=" + store}, append([]string{bin}, args...)...)
	}
	s.cleanup = func() { ufCleanup(s, "") }
	if out, err := s.cmd("import", tarball, "busybox:latest").CombinedOutput(); err != nil {
		return s, fmt.Errorf("import: %v: %s", err, out)
	}
	return s, gatewayOf(s)
}

// ufCleanup removes what a unionfuse system left and ends the rootless
// user namespace holder of runDir.
func ufCleanup(s *system, runDir string) {
	if out, _ := s.cmd("ps", "-aq").Output(); len(strings.Fields(string(out))) > 0 {
		s.cmd(append([]string{"rm", "-f"}, strings.Fields(string(out))...)...).Run()
	}
	if runDir == "" {
		return
	}
	// The holder of the user-network namespace would end within seconds
	// by itself.
	if b, err := os.ReadFile(filepath.Join(runDir, "unionfuse", "netns.json")); err == nil {
		var rec struct{ Holder struct{ Pid int } }
		if json.Unmarshal(b, &rec) == nil && rec.Holder.Pid > 1 {
			syscall.Kill(rec.Holder.Pid, syscall.SIGTERM)
		}
	}
	if b, err := os.ReadFile(filepath.Join(runDir, "unionfuse", "userns.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			syscall.Kill(pid, syscall.SIGTERM)
		}
	}
}

func unionfuseRootless(dir, bin, tarball string) (*system, error) {
	home := filepath.Join(dir, "uf-rootless")
	s := &system{name: "unionfuse, rootless slirp4netns", image: "busybox", listen: "127.0.0.1", rmNow: []string{"rm", "-f"}}
	os.Mkdir(home, 0o700)
	os.Chown(home, nobody, nobody)
	s.cmd = func(args ...string) *exec.Cmd {
		c := command([]string{"UNIONFUSE_ROOT=" + filepath.Join(home, "store"), "HOME=" + home, "XDG_RUNTIME_DIR=" + home},
			asNobody(append([]string{bin}, args...)...)...)
		c.Dir = home
		return c
	}
	s.cleanup = func() { ufCleanup(s, home) }
	if out, err := s.cmd("import", tarball, "busybox:latest").CombinedOutput(); err != nil {
		return s, fmt.Errorf("import: %v: %s", err, out)
	}
	return s, gatewayOf(s)
}

// podmanConf writes containers.conf, storage.conf and registries.conf for
// a podman of its own below d.
func podmanConf(d string, rootless bool) []string {
	for _, sub := range []string{"net", "tmp", "run"} {
		os.MkdirAll(filepath.Join(d, sub), 0o700)
	}
	storage := fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n", filepath.Join(d, "root"), filepath.Join(d, "run"))
	if rootless {
		storage = fmt.Sprintf("[storage]\ndriver = \"overlay\"\nrootless_storage_path = %q\n", filepath.Join(d, "storage"))
	}
	files := map[string]string{
		"containers.conf": fmt.Sprintf("[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\n[network]\nnetwork_config_dir = %q\n\n"+
			"[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\ntmp_dir = %q\n"+
			"network_cmd_options = [\"allow_host_loopback=true\"]\n",
			filepath.Join(d, "net"), filepath.Join(d, "tmp")),
		"storage.conf":    storage,
		"registries.conf": "",
	}
	for name, data := range files {
		must(os.WriteFile(filepath.Join(d, name), []byte(data), 0o644))
	}
	env := []string{"CONTAINERS_CONF=" + filepath.Join(d, "containers.conf"),
		"CONTAINERS_STORAGE_CONF=" + filepath.Join(d, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF=" + filepath.Join(d, "registries.conf")}
	if rootless {
		env = append(env, "HOME="+d, "XDG_RUNTIME_DIR="+filepath.Join(d, "run"))
		filepath.Walk(d, func(p string, _ os.FileInfo, _ error) error { return os.Chown(p, nobody, nobody) })
	}
	return env
}

func podmanRoot(dir, tarball string) (*system, error) {
	d := filepath.Join(dir, "podman-root")
	os.Mkdir(d, 0o700)
	env := podmanConf(d, false)
	s := &system{name: "podman, root CNI bridge", image: "localhost/netbench-busybox", rmNow: []string{"rm", "-f", "-t", "0"}}
	s.cmd = func(args ...string) *exec.Cmd { return command(env, append([]string{"podman"}, args...)...) }
	s.cleanup = func() { s.cmd("system", "reset", "-f").Run() }
	if out, err := s.cmd("import", "-q", tarball, s.image).CombinedOutput(); err != nil {
		return s, fmt.Errorf("import: %v: %s", err, out)
	}
	return s, gatewayOf(s)
}

// withSubIDs writes copies of /etc/subuid and /etc/subgid below d that
// give nobody the ids start..start+65535, and returns a wrapper that runs
// argv in a mount namespace of its own with the copies bound over the
// real files (as tests/ do): nothing global changes.
func withSubIDs(d string, start int) func(argv []string) []string {
	for _, f := range []string{"subuid", "subgid"} {
		old, _ := os.ReadFile("/etc/" + f)
		var lines []string
		for _, l := range strings.Split(string(old), "\n") {
			if l != "" && !strings.HasPrefix(l, "nobody:") {
				lines = append(lines, l+"\n")
			}
		}
		lines = append(lines, fmt.Sprintf("nobody:%d:65536\n", start))
		must(os.WriteFile(filepath.Join(d, f), []byte(strings.Join(lines, "")), 0o644))
	}
	return func(argv []string) []string {
		return append([]string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
			`mount --bind "$1" /etc/subuid && mount --bind "$2" /etc/subgid && shift 2 && exec "$@"`,
			"sh", filepath.Join(d, "subuid"), filepath.Join(d, "subgid")}, argv...)
	}
}

// userNetwork is the network the rootless user-network systems create.
const userNetwork = "netbench"

// unionfuseRootlessUserNet is unionfuse as uid 65534 with subordinate ids
// on a user-defined network: the user's own network namespace, a bridge
// in it and one slirp4netns (docs/network.md). The host's loopback is at
// 10.0.2.2, as with slirp4netns alone.
func unionfuseRootlessUserNet(dir, bin, tarball string) (*system, error) {
	home := filepath.Join(dir, "uf-rootless-usernet")
	s := &system{name: "unionfuse, rootless user network", image: "busybox", listen: "127.0.0.1", target: "10.0.2.2",
		netOpts: []string{"--network", userNetwork}, rmNow: []string{"rm", "-f"}}
	os.Mkdir(home, 0o755)
	wrap := withSubIDs(home, 800000)
	os.Chown(home, nobody, nobody)
	s.cmd = func(args ...string) *exec.Cmd {
		c := command([]string{"UNIONFUSE_ROOT=" + filepath.Join(home, "store"), "HOME=" + home, "XDG_RUNTIME_DIR=" + home},
			wrap(asNobody(append([]string{bin}, args...)...))...)
		c.Dir = home
		return c
	}
	s.cleanup = func() {
		ufCleanup(s, home)
		s.cmd("network", "rm", userNetwork).Run()
	}
	for _, args := range [][]string{{"import", tarball, "busybox:latest"}, {"network", "create", userNetwork}} {
		if out, err := s.cmd(args...).CombinedOutput(); err != nil {
			return s, fmt.Errorf("%s: %v: %s", args[0], err, out)
		}
	}
	return s, nil
}

// podmanRootless is podman as uid 65534 (subordinate ids bound over
// /etc/subuid as withSubIDs does) with slirp4netns, or, with userNet, on
// a network of podman network create: its rootless network namespace
// with one slirp4netns, which reaches the host's loopback at 10.0.2.2
// (allow_host_loopback in containers.conf).
func podmanRootless(dir, tarball string, userNet bool) (*system, error) {
	d := filepath.Join(dir, "podman-rootless")
	s := &system{name: "podman, rootless slirp4netns", image: "localhost/netbench-busybox", listen: "127.0.0.1",
		netOpts: []string{"--network", "slirp4netns:allow_host_loopback=true"}, rmNow: []string{"rm", "-f", "-t", "0"},
		// In this harness (setpriv, a mount namespace per command) every
		// podman run waits out conmon's 20 s exit timeout.
		noTime: "podman waits out its 20 s conmon exit timeout here"}
	start := 700000
	if userNet {
		d += "-usernet"
		s.name, s.target, s.netOpts = "podman, rootless user network", "10.0.2.2", []string{"--network", userNetwork}
		start = 900000
	}
	os.Mkdir(d, 0o755)
	wrap := withSubIDs(d, start)
	env := podmanConf(d, true)
	s.cmd = func(args ...string) *exec.Cmd {
		c := command(env, wrap(asNobody(append([]string{"podman"}, args...)...))...)
		c.Dir = d
		return c
	}
	s.cleanup = func() {
		s.cmd("system", "reset", "-f").Run()
		if b, err := os.ReadFile(filepath.Join(d, "run", "libpod", "tmp", "pause.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if out, err := s.cmd("import", "-q", tarball, s.image).CombinedOutput(); err != nil {
		return s, fmt.Errorf("import: %v: %s", err, out)
	}
	if !userNet {
		return s, gatewayOf(s)
	}
	if out, err := s.cmd("network", "create", userNetwork).CombinedOutput(); err != nil {
		return s, fmt.Errorf("network create: %v: %s", err, out)
	}
	return s, nil
}

// server is the host side for containers: it answers pings and sinks
// sends, reporting the throughput (MiB/s, first byte to EOF) of each.
func server(addr string) (net.Listener, <-chan float64, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	rates := make(chan float64, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				if n, d := wire.Serve(c); n > 0 {
					rates <- float64(n) / (1 << 20) / d.Seconds()
				}
			}()
		}
	}()
	return l, rates, nil
}

// send writes 's' and -mib MiB to addr and waits for the peer's close;
// it returns MiB/s.
func send(addr string) (float64, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, 1<<20)
	start := time.Now()
	c.Write([]byte{wire.Send})
	for i := 0; i < *mib; i++ {
		if _, err := c.Write(buf); err != nil {
			return 0, err
		}
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
	return float64(*mib) / time.Since(start).Seconds(), nil
}

// ping is the median ms of -pings connections to addr, each connect, one
// byte each way, close.
func ping(addr string, n int) (float64, error) {
	ts := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return 0, err
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b := []byte{wire.Ping}
		c.Write(b)
		_, err = io.ReadFull(c, b)
		c.Close()
		if err != nil {
			return 0, err
		}
		ts = append(ts, time.Since(start).Seconds()*1000)
	}
	return median(ts), nil
}

// toHost measures from a container of s to a server on the host:
// throughput and latency.
func toHost(s *system) (rate, lat float64, err error) {
	l, rates, err := server(net.JoinHostPort(s.listen, "0"))
	if err != nil {
		return 0, 0, err
	}
	defer l.Close()
	addr := net.JoinHostPort(s.target, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	out, err := s.run(s.netOpts, "sh", "-c", fmt.Sprintf("nettool send %s %d && nettool ping %s %d", addr, *mib, addr, *pings)).CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("%v: %s", err, out)
	}
	lat, err = strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return 0, 0, fmt.Errorf("nettool ping printed %q", out)
	}
	select {
	case rate = <-rates:
	case <-time.After(10 * time.Second):
		return 0, 0, fmt.Errorf("no throughput reported")
	}
	return rate, lat, nil
}

// toPublished measures from the host to a container of s serving on a
// published port: throughput and latency.
func toPublished(s *system) (rate, lat float64, err error) {
	l, err := net.Listen("tcp", net.JoinHostPort(*publishIP, "0"))
	if err != nil {
		return 0, 0, err
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	addr := net.JoinHostPort(*publishIP, port)
	name := fmt.Sprintf("netbench-%d", time.Now().UnixNano())
	opts := append(append([]string{"--name", name}, s.netOpts...), "-p", addr+":5000")
	cmd := s.run(opts, "nettool", "serve", "5000")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		s.cmd(append(s.rmNow, name)...).Run()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := ping(addr, 1); err == nil {
			break
		}
		select {
		case err := <-done:
			done <- err
			return 0, 0, fmt.Errorf("the container ended: %v: %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("the published port never answered: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rate, err = send(addr); err != nil {
		return 0, 0, err
	}
	lat, err = ping(addr, *pings)
	return rate, lat, err
}

// loopback is the ceiling: the same host client and server on 127.0.0.1.
func loopback() (rate, lat float64, err error) {
	l, rates, err := server("127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer l.Close()
	if _, err = send(l.Addr().String()); err != nil {
		return 0, 0, err
	}
	rate = <-rates
	lat, err = ping(l.Addr().String(), *pings)
	return rate, lat, err
}

// samples are the values of one cell over the rounds.
type samples []float64

func (v samples) String() string {
	if len(v) == 0 {
		return "failed"
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	f := func(x float64) string {
		if x >= 100 {
			return strconv.FormatFloat(x, 'f', 0, 64)
		}
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
	return fmt.Sprintf("%s (%s–%s)", f(median(s)), f(s[0]), f(s[len(s)-1]))
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// netTable measures -rounds rounds, the systems in a rotating order, and
// prints the table.
func netTable(systems []*system) {
	const cols = 4
	type row struct {
		name  string
		cells [cols]samples
	}
	rows := []*row{{name: "host loopback (ceiling)"}}
	for _, s := range systems {
		rows = append(rows, &row{name: s.name})
	}
	start := time.Now()
	for r := 0; r < *rounds; r++ {
		for i := range rows {
			k := (i + r) % len(rows)
			row := rows[k]
			var vals [cols]float64
			var err error
			if k == 0 {
				vals[0], vals[1], err = loopback()
				vals[2], vals[3] = vals[0], vals[1]
			} else {
				s := systems[k-1]
				vals[0], vals[1], err = toHost(s)
				if err == nil {
					vals[2], vals[3], err = toPublished(s)
				}
			}
			if err != nil {
				log.Printf("round %d, %s: %v", r+1, row.name, err)
				continue
			}
			for c := range vals {
				row.cells[c] = append(row.cells[c], vals[c])
			}
			log.Printf("round %d, %s: %.0f MiB/s %.3f ms, published %.0f MiB/s %.3f ms", r+1, row.name, vals[0], vals[1], vals[2], vals[3])
		}
	}
	fmt.Printf("%d rounds of %d MiB and %d connections each, published on %s, %s; median (min–max):\n\n",
		*rounds, *mib, *pings, *publishIP, time.Since(start).Round(time.Second))
	fmt.Println("| system | container→host MiB/s | container→host connection ms | host→published MiB/s | host→published connection ms |")
	fmt.Println("|---|---|---|---|---|")
	for _, row := range rows {
		fmt.Printf("| %s | %s | %s | %s | %s |\n", row.name, row.cells[0], row.cells[1], row.cells[2], row.cells[3])
	}
}

// runTable times `run --rm IMAGE true` -runs times per system and network
// (the default, then none), interleaved, and prints the table.
func runTable(systems []*system) {
	type variant struct {
		s    *system
		none bool
		ms   samples
	}
	var vs []*variant
	for _, s := range systems {
		if s.noTime != "" {
			continue
		}
		vs = append(vs, &variant{s: s}, &variant{s: s, none: true})
	}
	for i := 0; i < *runs; i++ {
		for j := range vs {
			v := vs[(i+j)%len(vs)]
			opts := v.s.netOpts
			if v.none {
				opts = []string{"--network", "none"}
			}
			start := time.Now()
			if out, err := v.s.run(opts, "true").CombinedOutput(); err != nil {
				log.Printf("%s: run --rm true: %v: %s", v.s.name, err, out)
				continue
			}
			v.ms = append(v.ms, float64(time.Since(start).Microseconds())/1000)
		}
	}
	fmt.Printf("\n`run --rm IMAGE true`, %d runs each, interleaved; wall ms, median (min–max):\n\n", *runs)
	fmt.Println("| system | network | ms |")
	fmt.Println("|---|---|---|")
	for _, v := range vs {
		net := "default"
		if v.none {
			net = "none"
		}
		fmt.Printf("| %s | %s | %s |\n", v.s.name, net, v.ms)
	}
	for _, s := range systems {
		if s.noTime != "" {
			fmt.Printf("| %s | | not timed: %s |\n", s.name, s.noTime)
		}
	}
}
