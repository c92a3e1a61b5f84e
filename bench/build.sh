#!/bin/sh
# bench/build.sh: `unionfuse build` beside `podman build` (issue 16).
#
#   bench/build.sh [-n RUNS] [-u UNIONFUSE] [-o OTHER_UNIONFUSE]
#
# Builds, RUNS times each (default 7), interleaved so that drift in the
# machine's load hits all alike, a Dockerfile of `FROM busybox` and a
# RUN step that creates 5,000 small files, with --no-cache:
#   unionfuse  UNIONFUSE build (default bin/unionfuse, built when missing)
#   other      OTHER_UNIONFUSE build, when -o is given (an A/B of builds)
#   podman     podman build (root, its kernel overlay driver, runc,
#              cgroupfs), when podman is installed
# and prints the median, min and max wall time of each as a Markdown
# table. Each tool gets its own store in a temporary directory, removed
# at the end; nothing global changes. Needs root and Debian's
# busybox-static (make deps).
set -eu

runs=7
unionfuse=
other=
while getopts n:u:o: opt; do
	case $opt in
	n) runs=$OPTARG ;;
	u) unionfuse=$OPTARG ;;
	o) other=$OPTARG ;;
	*) sed -n '2,17s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
	esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/bench/common.sh"
[ -n "$unionfuse" ] || unionfuse=$(default_unionfuse "$repo")
[ "$(id -u)" -eq 0 ] || { echo "build.sh: needs root" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "build.sh: /bin/busybox is missing (make deps)" >&2; exit 1; }

work=$(mktemp -d /tmp/build-bench.XXXXXX)
systems=unionfuse
[ -n "$other" ] && systems="$systems other"
command -v podman >/dev/null && systems="$systems podman"

# pm ARGS...: podman with its own store.
pm() {
	podman --root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp" \
		--runtime runc --cgroup-manager cgroupfs --events-backend none "$@"
}

# build SYSTEM: one build of the context with SYSTEM.
build() {
	case $1 in
	unionfuse) "$unionfuse" --root "$work/unionfuse" build -q --no-cache -t bench-5k:1 "$work/context" ;;
	other) "$other" --root "$work/other" build -q --no-cache -t bench-5k:1 "$work/context" ;;
	podman) pm build -q --no-cache --network none -t bench-5k:1 "$work/context" ;;
	esac
}

cleanup() {
	case " $systems " in *" podman "*) pm system reset -f >/dev/null 2>&1 || true ;; esac
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The image: busybox, a symlink per applet, /etc/passwd.
busybox_tar "$work"
mkdir -p "$work/context"
cat >"$work/context/Dockerfile" <<'EOT'
FROM busybox
RUN mkdir /d && cd /d && for i in $(seq 5000); do echo $i > f$i; done
EOT

for sys in $systems; do
	case $sys in
	unionfuse) "$unionfuse" --root "$work/unionfuse" import "$work/busybox.tar" busybox >/dev/null ;;
	other) "$other" --root "$work/other" import "$work/busybox.tar" busybox >/dev/null ;;
	podman) pm import -q "$work/busybox.tar" busybox >/dev/null ;;
	esac
	build "$sys" >/dev/null # warm up
done

now() { date +%s%N; }

i=0
while [ $i -lt "$runs" ]; do
	for sys in $systems; do
		t0=$(now)
		build "$sys" >/dev/null
		t1=$(now)
		echo $(((t1 - t0) / 1000000)) >>"$work/$sys.ms"
	done
	i=$((i + 1))
done

echo "$($unionfuse --version)${other:+, other: $($other --version)}"
command -v podman >/dev/null && echo "podman $(podman --version | awk '{print $3}'), runc $(runc --version | awk 'NR == 1 {print $3}')"
echo "Linux $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| build --no-cache, RUN creates 5,000 files | median | min–max | runs |"
echo "|---|--:|--:|--:|"
for sys in $systems; do
	set -- $(stats "$work/$sys.ms")
	echo "| $sys | $1 ms | $2–$3 ms | $(wc -l <"$work/$sys.ms") |"
done
