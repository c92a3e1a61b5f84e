#!/bin/sh
# bench/podman.sh: podman with unionfuse and with fuse-overlayfs as its
# overlay mount_program, side by side (issue 3).
#
#   bench/podman.sh [-n RUNS] [-b BUILDS] [-c CONTAINERS] [-u UNIONFUSE] [-f FUSE_OVERLAYFS]
#
# Measures, interleaving the mount programs (unionfuse with a daemon per
# union, unionfuse with its union server, -o server=, and fuse-overlayfs)
# so that drift in the machine's load hits all alike:
#   run    wall time of `podman run --rm IMG true` (RUNS times, default 9)
#   build  wall time of `podman build --no-cache` of a Containerfile whose
#          RUN step creates 5,000 files (BUILDS times, default 5)
#   many   CONTAINERS containers (default 20; 0 skips) started at once,
#          each walking its root and then sleeping: the total proportional
#          set size of the processes serving their unions
# and prints the median, min and max of each as a Markdown table.
#
# Needs root, podman, runc, fuse-overlayfs and Debian's busybox-static
# (make deps). Each mount program gets its own podman store and
# configuration in a temporary directory (CONTAINERS_CONF,
# CONTAINERS_STORAGE_CONF), which is reset with `podman system reset` and
# removed at the end; nothing global changes. UNIONFUSE defaults to
# bin/unionfuse, built with `make build` when missing; podman runs the
# small unionfuse-fuse beside it as its mount_program when it is there.
set -eu

runs=9
builds=5
containers=20
unionfuse=
fuseoverlayfs=$(command -v fuse-overlayfs || true)
while getopts n:b:c:u:f: opt; do
	case $opt in
	n) runs=$OPTARG ;;
	b) builds=$OPTARG ;;
	c) containers=$OPTARG ;;
	u) unionfuse=$OPTARG ;;
	f) fuseoverlayfs=$OPTARG ;;
	*) sed -n '2,24s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
	esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/bench/common.sh"
[ -n "$unionfuse" ] || unionfuse=$(default_unionfuse "$repo")
[ "$(id -u)" -eq 0 ] || { echo "podman.sh: needs root" >&2; exit 1; }
for prog in podman runc "$unionfuse" "$fuseoverlayfs" /bin/busybox; do
	command -v "$prog" >/dev/null || { echo "podman.sh: $prog is missing (make deps)" >&2; exit 1; }
done
unionfuse=$(cd "$(dirname "$unionfuse")" && pwd)/$(basename "$unionfuse")

work=$(mktemp -d /tmp/podman-bench.XXXXXX)
systems="unionfuse unionfuse-server fuse-overlayfs"

# pm SYSTEM ARGS...: podman with SYSTEM's store and configuration.
pm() {
	sys=$1
	shift
	CONTAINERS_CONF=$work/$sys/containers.conf \
		CONTAINERS_STORAGE_CONF=$work/$sys/storage.conf \
		CONTAINERS_REGISTRIES_CONF=$work/registries.conf \
		podman "$@"
}

cleanup() {
	for sys in $systems; do
		[ -f "$work/$sys/storage.conf" ] && pm "$sys" system reset -f >/dev/null 2>&1 || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The image: busybox, a symlink per applet, /etc/passwd.
busybox_tar "$work"
: >"$work/registries.conf"

mkdir -p "$work/context"
cat >"$work/context/Containerfile" <<'EOF'
FROM localhost/bench-busybox:1
RUN mkdir /d && cd /d && for i in $(seq 5000); do echo $i > f$i; done
EOF

for sys in $systems; do
	case $sys in
	unionfuse | unionfuse-server) mp=$unionfuse; [ -x "$unionfuse-fuse" ] && mp=$unionfuse-fuse ;;
	fuse-overlayfs) mp=$fuseoverlayfs ;;
	esac
	d=$work/$sys
	mountopt=
	[ "$sys" = unionfuse-server ] && mountopt="mountopt = \"server=$d/root\""
	mkdir -p "$d"
	cat >"$d/containers.conf" <<EOF
[containers]
netns = "none"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[network]
network_config_dir = "$d/net"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
tmp_dir = "$d/tmp"
EOF
	cat >"$d/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$d/root"
runroot = "$d/runroot"

[storage.options.overlay]
mount_program = "$mp"
$mountopt
EOF
	pm "$sys" import -q "$work/busybox.tar" localhost/bench-busybox:1 >/dev/null
	# Warm up: the first run and build pay for podman's first start.
	pm "$sys" run --rm localhost/bench-busybox:1 true
	pm "$sys" build -q --no-cache -t localhost/bench-5k:1 "$work/context" >/dev/null
	n=$(pm "$sys" run --rm localhost/bench-5k:1 sh -c 'ls /d | wc -l')
	[ "$n" -eq 5000 ] || { echo "podman.sh: $sys: the built image has $n files in /d, want 5000" >&2; exit 1; }
	pm "$sys" rmi -f localhost/bench-5k:1 >/dev/null
done

now() { date +%s%N; }

# timed SYSTEM KIND ARGS...: run podman ARGS, append its wall time (ms)
# to $work/SYSTEM.KIND.
timed() {
	sys=$1 kind=$2
	shift 2
	t0=$(now)
	pm "$sys" "$@" >/dev/null
	t1=$(now)
	echo $(((t1 - t0) / 1000000)) >>"$work/$sys.$kind"
}

i=0
while [ $i -lt "$runs" ]; do
	for sys in $systems; do
		timed "$sys" run run --rm localhost/bench-busybox:1 true
	done
	i=$((i + 1))
done
i=0
while [ $i -lt "$builds" ]; do
	for sys in $systems; do
		timed "$sys" build build -q --no-cache -t localhost/bench-5k:1 "$work/context"
		pm "$sys" rmi -f localhost/bench-5k:1 >/dev/null
	done
	i=$((i + 1))
done

# serving_pss SYSTEM: the total Pss (kB) of the processes of SYSTEM's
# mount program that serve unions of its store (daemons, the union server
# or fuse-overlayfs; not conmon, whose arguments name the store too).
serving_pss() {
	total=0
	for p in /proc/[0-9]*; do
		case $(readlink "$p/exe" 2>/dev/null) in
		*/unionfuse* | *fuse-overlayfs*) ;;
		*) continue ;;
		esac
		tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "$work/$1/" || continue
		kb=$(awk '/^Pss:/ {print $2}' "$p/smaps_rollup" 2>/dev/null)
		total=$((total + ${kb:-0}))
	done
	echo "$total"
}

if [ "$containers" -gt 0 ]; then
	for sys in $systems; do
		i=0
		while [ $i -lt "$containers" ]; do
			pm "$sys" run -d --name "many$i" localhost/bench-busybox:1 \
				sh -c 'find / -xdev >/dev/null; touch /walked; sleep 600' >/dev/null
			i=$((i + 1))
		done
		# Until every container has walked its root (a minute at most).
		i=0
		while [ $i -lt "$containers" ]; do
			tries=0
			until pm "$sys" exec "many$i" test -e /walked 2>/dev/null; do
				tries=$((tries + 1))
				[ $tries -lt 300 ] || { echo "podman.sh: $sys: container many$i did not walk its root" >&2; exit 1; }
				sleep 0.2
			done
			i=$((i + 1))
		done
		# smaps_rollup counts kB of 1,024 bytes; MB here are 10^6 bytes.
		echo $(($(serving_pss "$sys") * 1024 / 1000000)) >"$work/$sys.many"
		pm "$sys" rm -f -t 0 $(i=0; while [ $i -lt "$containers" ]; do echo "many$i"; i=$((i + 1)); done) >/dev/null
	done
fi

echo "podman $(podman --version | awk '{print $3}'), runc $(runc --version | awk 'NR == 1 {print $3}'),"
echo "$($unionfuse --version), $($fuseoverlayfs --version 2>&1 | grep '^fuse-overlayfs')"
echo "Linux $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| workload | mount program | median | min–max | runs |"
echo "|---|---|--:|--:|--:|"
for kind in run build; do
	case $kind in
	run) what='`podman run --rm IMG true`' ;;
	build) what='`podman build --no-cache`, RUN creates 5,000 files' ;;
	esac
	for sys in $systems; do
		[ -s "$work/$sys.$kind" ] || continue # -n 0 or -b 0
		set -- $(stats "$work/$sys.$kind")
		echo "| $what | $sys | $1 ms | $2–$3 ms | $(wc -l <"$work/$sys.$kind") |"
		what=
	done
done
if [ "$containers" -gt 0 ]; then
	what="$containers containers running, each walked: total PSS of the mount programs"
	for sys in $systems; do
		echo "| $what | $sys | $(cat "$work/$sys.many") MB | | 1 |"
		what=
	done
fi
