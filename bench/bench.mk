# Benchmarks, included by the Makefile (-include bench/bench.mk).
#
#   make bench        the full benchmark: native, kernel overlayfs,
#                     fuse-overlayfs and unionfuse, interleaved, 3 repetitions
#                     (as root; under 10 minutes on 2 cores)
#   make bench-quick  the same with small sizes, about a minute
#   make bench-all    everything in one command: make bench as root, the
#                     same without root (-rootless), both in one table and
#                     plot (bench/results/all.{md,svg,png}), the build of a
#                     5,000-file RUN beside podman build (bench/build.sh,
#                     3 rounds), and the registry benchmark (over an
#                     hour on 2 cores: each of the two runs includes the
#                     million-name walk and the 100 mounts)
#   make bench-deps   install fio and fuse-overlayfs when missing
#   make bench-registry  only the registry benchmark (bench/registry):
#                     pull and push against a local docker-registry,
#                     unionfuse beside podman and skopeo; part of both
#                     targets above (-quick: one repetition)
#   make bench-lazy   only the lazy-pull benchmark (bench/lazy): an eStargz
#                     image of 1 GB in 20,000 files through a proxy held to
#                     100 MB/s, lazy pull + run against a full pull and
#                     podman (a few minutes; -quick: 100 MB, one repetition)
#
# Extra flags go in BENCH_FLAGS (REGBENCH_FLAGS for bench/registry,
# LAZYBENCH_FLAGS for bench/lazy), e.g.
#   make bench BENCH_FLAGS='-workloads walk,create -reps 5'
#   make bench BENCH_FLAGS='-profile bench/results/pprof'
# Results land in bench/results/ (see docs/benchmarks.md). Benchmarks are
# never part of make test.

GO ?= go
BENCH_FLAGS ?=
REGBENCH_FLAGS ?=
LAZYBENCH_FLAGS ?=
BENCH_DEB_PACKAGES := fio fuse-overlayfs fuse3 tar findutils docker-registry podman skopeo runc busybox-static

.PHONY: bench bench-quick bench-all bench-deps bench-build bench-registry bench-lazy

bench-build:
	$(GO) build -o bin/ufbench ./bench
	$(GO) build -o bin/ufregbench ./bench/registry
	$(GO) build -o bin/uflazybench ./bench/lazy

bench: bench-deps bench-build
	bin/ufbench $(BENCH_FLAGS)
	bin/ufregbench $(REGBENCH_FLAGS)

bench-quick: bench-deps bench-build
	bin/ufbench -quick $(BENCH_FLAGS)
	bin/ufregbench -quick $(REGBENCH_FLAGS)

bench-all: bench-deps bench-build
	bin/ufbench $(BENCH_FLAGS)
	bin/ufbench -rootless $(BENCH_FLAGS)
	bin/ufbench -combine bench/results/latest.json,bench/results/rootless.json
	bench/build.sh -n 3
	bin/ufregbench $(REGBENCH_FLAGS)

bench-registry: bench-deps bench-build
	bin/ufregbench $(REGBENCH_FLAGS)

bench-lazy: bench-deps bench-build
	bin/uflazybench $(LAZYBENCH_FLAGS)

# bench-deps installs the Debian packages the benchmark runs (as root), or
# says which are missing (otherwise).
bench-deps:
	@missing=""; \
	for p in $(BENCH_DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ]; then \
		echo "missing Debian packages:$$missing (run 'make bench-deps' as root, or: sudo apt-get install$$missing)"; \
		exit 1; \
	fi; \
	echo "installing:$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing
