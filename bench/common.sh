# bench/common.sh: what the shell benchmarks (podman.sh, build.sh) share.
# Sourced, not run.

# default_unionfuse REPO: bin/unionfuse of REPO, built with `make build`
# when missing.
default_unionfuse() {
	[ -x "$1/bin/unionfuse" ] || make -C "$1" build >&2
	echo "$1/bin/unionfuse"
}

# busybox_tar DIR: writes DIR/busybox.tar, the benchmarks' image: Debian's
# busybox-static, a symbolic link per applet, /etc/passwd, /etc/group.
busybox_tar() {
	mkdir -p "$1/rootfs/bin" "$1/rootfs/etc" "$1/rootfs/tmp"
	cp /bin/busybox "$1/rootfs/bin/busybox"
	for applet in $(/bin/busybox --list); do
		[ "$applet" = busybox ] || ln -s busybox "$1/rootfs/bin/$applet"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$1/rootfs/etc/passwd"
	echo 'root:x:0:' >"$1/rootfs/etc/group"
	tar -C "$1/rootfs" -cf "$1/busybox.tar" .
}

# stats FILE: "median min max" of the numbers in FILE (ms).
stats() {
	sort -n "$1" | awk '{v[NR] = $1}
		END {m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		     printf "%d %d %d\n", m, v[1], v[NR]}'
}
