# unionfuse: build, test, demo, install.
#
#   make demo     install what is missing, build, walk through the tutorial
#   make test     install what is missing, run unit + integration tests
#                 (the integration tests mount: they need root and /dev/fuse)

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
# mount(8) looks for the helper of type fuse.unionfuse here, before it
# falls back to mount.fuse3 (which finds "unionfuse" through PATH).
HELPERDIR ?= /sbin
TEST_TIMEOUT ?= 20m

# Debian packages the tests and the demo use.
DEB_PACKAGES := fuse3 attr busybox-static fuse-overlayfs skopeo podman runc uidmap docker-registry slirp4netns containerd

LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build test deps demo install uninstall lint clean

all: build

# Static binaries (no cgo): every daemon, monitor and container init is
# one of them started again, and skipping the dynamic loader saves each
# about 2 ms. unionfuse-fuse is the small binary that serves unions (the
# daemon unionfuse mount starts, podman's mount_program), unionfuse-init
# the one that becomes each container's first process, and
# unionfuse-snapshotter serves `unionfuse snapshotter` (containerd's gRPC
# packages stay out of the CLI): unionfuse looks for them beside itself,
# so all four are built and installed together.
build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/unionfuse ./cmd/unionfuse
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/unionfuse-fuse ./cmd/unionfuse-fuse
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/unionfuse-init ./cmd/unionfuse-init
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/unionfuse-snapshotter ./cmd/unionfuse-snapshotter

test: deps
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

demo: deps build
	scripts/demo.sh bin/unionfuse

# deps installs the Debian packages that are missing (as root), or says
# which are missing (otherwise).
deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ]; then \
		echo "missing Debian packages:$$missing (run 'make deps' as root, or: sudo apt-get install$$missing)"; \
		exit 0; \
	fi; \
	echo "installing:$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(HELPERDIR)
	install -m 0755 bin/unionfuse $(DESTDIR)$(BINDIR)/unionfuse
	install -m 0755 bin/unionfuse-fuse $(DESTDIR)$(BINDIR)/unionfuse-fuse
	install -m 0755 bin/unionfuse-init $(DESTDIR)$(BINDIR)/unionfuse-init
	install -m 0755 bin/unionfuse-snapshotter $(DESTDIR)$(BINDIR)/unionfuse-snapshotter
	ln -sf $(BINDIR)/unionfuse $(DESTDIR)$(HELPERDIR)/mount.fuse.unionfuse

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/unionfuse $(DESTDIR)$(BINDIR)/unionfuse-fuse $(DESTDIR)$(BINDIR)/unionfuse-init $(DESTDIR)$(BINDIR)/unionfuse-snapshotter $(DESTDIR)$(HELPERDIR)/mount.fuse.unionfuse

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') $$(git ls-files --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin

# make bench, make bench-quick: see bench/bench.mk and docs/benchmarks.md.
-include bench/bench.mk
