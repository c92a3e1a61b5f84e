#!/bin/sh
# bench/containerd.sh: containerd with the unionfuse snapshotter beside its
# own overlayfs and native snapshotters and fuse-overlayfs-snapshotter's
# approach (fuse-overlayfs as the mount helper) (issue 22).
#
#   bench/containerd.sh [-n RUNS] [-u UNIONFUSE] [-s "SNAPSHOTTER..."]
#
# Measures, interleaving the snapshotters so that drift in the machine's
# load hits all alike:
#   run     wall time of `ctr run --rm IMG ID true` (RUNS times, default 9)
#   import  wall time of `ctr image import` of a busybox archive, which
#           unpacks its layer into the snapshotter (RUNS times)
# and prints the median, min and max of each as a Markdown table. -s
# measures only the snapshotters named (default all five below).
#
# Snapshotters: overlayfs and native (containerd's own), unionfuse
# (`unionfuse snapshotter` as installed: it serves the unions from its
# union server and returns bind mounts of them), unionfuse-fuse (the same
# with --mount-helper unionfuse-fuse: mounts of type fuse3.unionfuse-fuse
# that containerd makes through mount.fuse3, one daemon per union) and
# fuse-overlayfs (the same snapshotter with --mount-helper
# fuse-overlayfs: mounts of type fuse3.fuse-overlayfs, as
# fuse-overlayfs-snapshotter returns).
#
# Needs root, Debian's containerd, runc, fuse3, fuse-overlayfs and
# busybox-static (make deps). containerd and the snapshotters run on their
# own config, sockets and directories in a temporary directory, removed at
# the end; they are stopped by pid. UNIONFUSE defaults to bin/unionfuse,
# built with `make build` when missing.
set -eu

runs=9
unionfuse=
systems="overlayfs native unionfuse unionfuse-fuse fuse-overlayfs"
while getopts n:u:s: opt; do
	case $opt in
	n) runs=$OPTARG ;;
	u) unionfuse=$OPTARG ;;
	s) systems=$OPTARG ;;
	*) sed -n '2,29s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
	esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$unionfuse" ]; then
	unionfuse=$repo/bin/unionfuse
	[ -x "$unionfuse" ] || make -C "$repo" build >&2
fi
[ "$(id -u)" -eq 0 ] || { echo "containerd.sh: needs root" >&2; exit 1; }
for prog in containerd ctr runc mount.fuse3 fuse-overlayfs "$unionfuse" "$unionfuse-fuse" /bin/busybox; do
	command -v "$prog" >/dev/null || { echo "containerd.sh: $prog is missing (make deps; make build)" >&2; exit 1; }
done
unionfuse=$(cd "$(dirname "$unionfuse")" && pwd)/$(basename "$unionfuse")

work=$(mktemp -d /tmp/ctrbench.XXXXXX)
helpers="unionfuse-fuse fuse-overlayfs"
ns=bench
pids=

ctr_() { ctr -a "$work/containerd.sock" -n $ns "$@"; }

cleanup() {
	if [ -S "$work/containerd.sock" ]; then
		for id in $(ctr_ task ls -q 2>/dev/null); do ctr_ task delete -f "$id" >/dev/null 2>&1 || true; done
		for id in $(ctr_ container ls -q 2>/dev/null); do ctr_ container rm "$id" >/dev/null 2>&1 || true; done
	fi
	for pid in $pids; do kill "$pid" 2>/dev/null || true; done
	for pid in $pids; do wait "$pid" 2>/dev/null || true; done
	grep -q " $work" /proc/self/mountinfo && awk -v w="$work" '$5 ~ "^"w {print $5}' /proc/self/mountinfo |
		sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# PATH for containerd and its shims: mount.fuse3 finds the helpers here.
mkdir -p "$work/path"
ln -s "$unionfuse" "$work/path/unionfuse"
ln -s "$unionfuse-fuse" "$work/path/unionfuse-fuse"
export PATH="$work/path:$PATH"

cat >"$work/config.toml" <<EOF
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt"]

[grpc]
  address = "$work/containerd.sock"

[ttrpc]
  address = "$work/containerd.sock.ttrpc"
EOF
for h in unionfuse $helpers; do
	form=
	[ "$h" = unionfuse ] || form="--mount-helper $h"
	"$unionfuse" snapshotter --root "$work/snap-$h" --address "$work/snap-$h.sock" $form \
		>>"$work/snapshotter.log" 2>&1 &
	pids="$pids $!"
	cat >>"$work/config.toml" <<EOF

[proxy_plugins.$h]
  type = "snapshot"
  address = "$work/snap-$h.sock"
EOF
done
containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
pids="$pids $!"
i=0
until ctr_ plugins ls 2>/dev/null | grep -q fuse-overlayfs; do
	i=$((i + 1))
	[ $i -lt 100 ] || { echo "containerd.sh: containerd did not start:" >&2; tail "$work/containerd.log" >&2; exit 1; }
	sleep 0.2
done

# The image: busybox, a symlink per applet, /etc/passwd; through
# unionfuse's store into a docker archive that ctr imports.
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
	[ "$applet" = busybox ] || ln -s busybox "$work/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$work/rootfs/etc/passwd"
echo 'root:x:0:' >"$work/rootfs/etc/group"
tar -C "$work/rootfs" -cf "$work/busybox.tar" .
"$unionfuse" import -q --root "$work/store" "$work/busybox.tar" bench/busybox:1 >/dev/null
"$unionfuse" save --root "$work/store" -o "$work/busybox-image.tar" bench/busybox:1
img=docker.io/bench/busybox:1

for sys in $systems; do
	ctr_ image import --snapshotter "$sys" "$work/busybox-image.tar" >/dev/null
	# Warm up: the first run pays for the first shim start.
	out=$(ctr_ run --rm --snapshotter "$sys" --fifo-dir "$work/fifo" --runc-root "$work/runc" "$img" warm echo ok)
	[ "$out" = ok ] || { echo "containerd.sh: $sys: echo ok printed '$out'" >&2; exit 1; }
done

now() { date +%s%N; }

# timed SYSTEM KIND ARGS...: run ctr ARGS, append its wall time (ms) to
# $work/SYSTEM.KIND.
timed() {
	sys=$1 kind=$2
	shift 2
	t0=$(now)
	ctr_ "$@" >/dev/null
	t1=$(now)
	echo $(((t1 - t0) / 1000000)) >>"$work/$sys.$kind"
}

i=0
while [ $i -lt "$runs" ]; do
	for sys in $systems; do
		timed "$sys" run run --rm --snapshotter "$sys" --fifo-dir "$work/fifo" --runc-root "$work/runc" "$img" "r$i" true
		ctr_ image rm --sync "$img" >/dev/null
		timed "$sys" import image import --snapshotter "$sys" "$work/busybox-image.tar"
	done
	i=$((i + 1))
done

# stats FILE: "median min max" of the numbers in FILE (ms).
stats() {
	sort -n "$1" | awk '{v[NR] = $1}
		END {m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		     printf "%d %d %d\n", m, v[1], v[NR]}'
}

echo "containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR == 1 {print $3}'),"
echo "$($unionfuse --version), $(fuse-overlayfs --version 2>&1 | grep '^fuse-overlayfs')"
echo "Linux $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| workload | snapshotter | median | min–max | runs |"
echo "|---|---|--:|--:|--:|"
for kind in run import; do
	case $kind in
	run) what='`ctr run --rm IMG ID true`' ;;
	import) what='`ctr image import` (unpack), busybox' ;;
	esac
	for sys in $systems; do
		set -- $(stats "$work/$sys.$kind")
		echo "| $what | $sys | $1 ms | $2–$3 ms | $(wc -l <"$work/$sys.$kind") |"
		what=
	done
done
