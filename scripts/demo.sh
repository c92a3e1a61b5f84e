#!/usr/bin/env bash
# The container-images tutorial's union-filesystem walk-through, done with
# unionfuse instead of `mount -t overlay`: two layers (lower: f1 f2 f3,
# upper: f3 f4), then add f5, delete f2 (a whiteout appears in upper) and
# append to f1 (copied up; lower untouched).
#
# Usage: scripts/demo.sh [path/to/unionfuse]   (default: bin/unionfuse)
set -euo pipefail

bin=$(realpath "${1:-bin/unionfuse}")
[ -x "$bin" ] || { echo "demo: $bin not found; run 'make build' first" >&2; exit 1; }

top=$(mktemp -d "${TMPDIR:-/tmp}/unionfuse-demo.XXXXXX")
registry_pid=
cleanup() {
	cd /
	for store in "$top"/store*; do
		[ -d "$store/containers" ] || continue
		ids=$(UNIONFUSE_ROOT="$store" "$bin" ps -aq 2>/dev/null || true)
		[ -z "$ids" ] || UNIONFUSE_ROOT="$store" "$bin" rm -f $ids >/dev/null 2>&1 || true
	done
	if [ -n "$registry_pid" ]; then
		kill "$registry_pid" 2>/dev/null || true
		wait "$registry_pid" 2>/dev/null || true
	fi
	if grep -q " $top/demo/merged " /proc/mounts 2>/dev/null; then
		"$bin" umount "$top/demo/merged" 2>/dev/null || umount -l "$top/demo/merged" 2>/dev/null || true
	fi
	rm -rf "$top"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$top"

# run prints a command the way the tutorial does, then runs it.
run() {
	printf '\n$ %s\n' "$*"
	eval "$@"
}
say() { printf '\n# %s\n' "$*"; }
unionfuse() { "$bin" "$@"; }

opts=()
if [ "$(id -u)" -ne 0 ]; then
	say "not root: mounting with -o userxattr through fusermount3"
	opts=(-o userxattr)
fi

say "The layers: a lower (read-only) and an upper (read-write) directory"
mkdir -p demo/lower demo/upper demo/work demo/merged
for i in 1 2 3; do echo "This is a file $i in lower layer" > "demo/lower/f$i"; done
for i in 3 4; do echo "This is a file $i in upper layer" > "demo/upper/f$i"; done
mkdir demo/lower/docs && echo "a lower file in docs" > demo/lower/docs/readme
run ls -l demo/lower/
run ls -l demo/upper/

say "Mount the union (lowers top first, then upper, work, merged)"
run unionfuse mount "${opts[@]}" demo/lower demo/upper demo/work demo/merged
run ls -l demo/merged/
run cat demo/merged/f3

say "Add a file: it lands in upper"
run 'echo "A new file called f5 in merged view" > demo/merged/f5'
run ls -l demo/merged/
run ls -l demo/upper/

say "Delete a file that lives in lower: upper gets a whiteout (c 0, 0)"
run rm demo/merged/f2
run ls -l demo/merged/
run ls -l demo/upper/
run ls -l demo/lower/

say "Modify a lower file: it is copied up, then changed in upper"
run cat demo/merged/f1
run 'echo "adding some random content" >> demo/merged/f1'
run cat demo/merged/f1
run ls -l demo/upper/
run cat demo/upper/f1
run cat demo/lower/f1

say "Rename a directory of lower: it moves at once; its upper copy records where its lower content is (overlay.redirect, as the kernel's)"
run mv demo/merged/docs demo/merged/manual
run cat demo/merged/manual/readme
run ls -l demo/upper/
xattr_ns=trusted
[ "$(id -u)" -eq 0 ] || xattr_ns=user
run getfattr --absolute-names -n "$xattr_ns.overlay.redirect" demo/upper/manual

say "Unmount; the lower layer is untouched"
run unionfuse umount demo/merged
run ls -l demo/merged/
run ls -l demo/lower/
run cat demo/lower/f1

# --- The image builder: the two-Dockerfile walk-through of the tutorial ---
# (docker build / images / history / run, done with unionfuse in a store of
# its own under $top, so nothing global changes)
if [ "$(id -u)" -ne 0 ] || [ ! -x /bin/busybox ]; then
	say "skipping the builder walk-through: it needs root and Debian's busybox-static"
else
	export UNIONFUSE_ROOT="$top/store"
	say "A busybox base image: Debian's static /bin/busybox and a link for each applet"
	mkdir -p rootfs/bin rootfs/etc rootfs/tmp rootfs/root
	cp /bin/busybox rootfs/bin/
	for applet in $(/bin/busybox --list); do
		[ "$applet" = busybox ] || ln -s busybox "rootfs/bin/$applet"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' > rootfs/etc/passwd
	echo 'root:x:0:' > rootfs/etc/group
	tar -C rootfs -czf busybox.tar.gz .
	run unionfuse import busybox.tar.gz busybox:latest

	# examples/ of the checkout whose bin/ holds the binary (make demo)
	cp -r "$(dirname "$bin")/../examples/hello" cow-test
	cd cow-test
	run cat Dockerfile.base
	run cat Dockerfile
	run cat hello.sh
	run unionfuse build -t my-base-image:1.0 -f Dockerfile.base .
	run unionfuse build -t my-final-image:1.0 -f Dockerfile .
	say "Build again: every step comes from the cache"
	run unionfuse build -t my-base-image:1.0 -f Dockerfile.base .
	run unionfuse images
	say "The layers are the same ids in both images; the CMD step adds 0B"
	run unionfuse history my-base-image:1.0
	run unionfuse history my-final-image:1.0
	run ls -l "$UNIONFUSE_ROOT/layers/"
	run unionfuse run --rm my-final-image:1.0

	say "Five containers of one image: each adds only a thin layer of its own"
	for i in 1 2 3 4 5; do
		run unionfuse run --rm -dit --name "my_container_$i" my-final-image:1.0 sh
	done
	run unionfuse ps
	run unionfuse exec my_container_1 sh -c "'echo hello > /app/greeting'"
	run unionfuse ps -s
	run ls "$UNIONFUSE_ROOT/containers/"
	say "du -x: each merged/ is the container's mounted root, not stored there"
	run du -shx "$UNIONFUSE_ROOT"/containers/*
	run unionfuse diff my_container_1
	run 'unionfuse stop -t 1 $(unionfuse ps -q)'
	run unionfuse ps -a
	cd ..
fi

# --- Registries: the image goes from machine to machine through a local
# docker-registry; each machine is played by a store of its own ---
if [ "$(id -u)" -ne 0 ] || [ ! -x /bin/busybox ] || ! command -v docker-registry >/dev/null; then
	say "skipping the registry walk-through: it needs root, busybox-static and docker-registry (make deps)"
else
	say "A registry on this machine: Debian's docker-registry on 127.0.0.1, a free port, its storage in $top/registry"
	cat > registry.yml <<-END
	version: 0.1
	log:
	  level: info
	  accesslog:
	    disabled: true
	storage:
	  filesystem:
	    rootdirectory: $top/registry
	http:
	  addr: 127.0.0.1:0
	END
	docker-registry serve registry.yml > registry.log 2>&1 &
	registry_pid=$!
	reg=
	for _ in $(seq 100); do
		reg=$(sed -n 's/.*msg="listening on \(127\.0\.0\.1:[0-9]*\)".*/\1/p' registry.log)
		[ -z "$reg" ] || ! /bin/busybox wget -q -O /dev/null "http://$reg/v2/" 2>/dev/null || break
		kill -0 "$registry_pid" 2>/dev/null || { cat registry.log >&2; exit 1; }
		sleep 0.1
	done
	[ -n "$reg" ] || { echo "demo: docker-registry did not start" >&2; cat registry.log >&2; exit 1; }
	echo "docker-registry (pid $registry_pid) listens on $reg"
	export UNIONFUSE_ROOT="$top/store"
	run unionfuse tag busybox:latest "$reg/busybox:latest"
	run unionfuse push "$reg/busybox:latest"

	say "A second machine (a clean store): pull the base, build on it, push the result"
	export UNIONFUSE_ROOT="$top/store-build"
	run unionfuse pull "$reg/busybox:latest"
	cd cow-test
	printf 'FROM %s/busybox:latest\nCOPY . /app\nCMD /app/hello.sh\n' "$reg" > Dockerfile.registry
	run cat Dockerfile.registry
	run unionfuse build -t "$reg/hello:1.0" -f Dockerfile.registry .
	run unionfuse push "$reg/hello:1.0"
	cd ..

	say "A third machine: pull the image and run it"
	export UNIONFUSE_ROOT="$top/store-run"
	run unionfuse pull "$reg/hello:1.0"
	run unionfuse run --rm "$reg/hello:1.0"

	say "A fourth machine: run pulls what it lacks by itself"
	export UNIONFUSE_ROOT="$top/store-fresh"
	run unionfuse run --rm "$reg/hello:1.0"
	run unionfuse images
fi
printf '\ndemo: done\n'
