// Package cowcache is unionfuse's layer store: read-only layers, the images
// made of them, per-container copy-on-write layers, and the import and
// export of image archives.
//
// # On-disk layout
//
// One root directory (see [DefaultRoot]) holds everything, laid out in the
// spirit of Docker's overlay2 driver so that what the tutorials show can be
// seen here too:
//
//	<root>/
//	├── lock                       flock(2): shared for readers, exclusive for writers
//	├── layers/
//	│   └── <id>/                  one read-only layer; <id> is its ChainID (hex)
//	│       ├── diff/              the layer's files, kernel overlay format
//	│       │                      (internal/ovlfmt): whiteout = char device 0/0,
//	│       │                      opaque dir = trusted.overlay.opaque "y"
//	│       │                      (user.overlay.opaque without root, see
//	│       │                      Store.UserXattr)
//	│       ├── link               the short name of diff/ (26 characters)
//	│       ├── lower              l/<short>:l/<short>... the layers below, top first
//	│       ├── work/              empty; overlay's work dir when diff/ is an upper
//	│       ├── partial/           only while the layer is partial (pulled lazily:
//	│       │                      its files' data arrives on demand; partial.go)
//	│       └── committed          JSON metadata; present only when complete
//	├── l/
//	│   └── <short> -> ../layers/<id>/diff
//	├── images/                    an OCI image layout (image-spec v1)
//	│   ├── oci-layout
//	│   ├── index.json             one manifest per image; the names ("busybox:latest")
//	│   │                          are org.opencontainers.image.ref.name annotations
//	│   └── blobs/sha256/<digest>  manifests, configs and layer tarballs as
//	│                              they came in (what save writes back out)
//	├── containers/
//	│   └── <id>/{diff,work,merged,config.json}
//	├── container-names/
//	│   └── <name>                 the id of the container that has the name
//	├── container-exits/
//	│   └── <id>                   exit status of a container removed on exit
//	│                              (run --rm), for a wait that finds it gone
//	├── volumes/
//	│   └── <name>/                a volume, as docker's local driver
//	│       ├── _data/             what containers mount (owned by the caller)
//	│       └── volume.json        CreatedAt, Labels, Options
//	├── cache/                     build-cache index: (parent chain, step) -> layer
//	├── mounts/
//	│   └── <hash>.json            an image mounted read-only, and the process
//	│                              serving it (see Mount): keeps the image
//	├── leases/
//	│   └── <random>               image ids a running build keeps (see Lease),
//	│                              held (flock) by the build: dies with it
//	└── tmp/
//	    ├── <random>/              a layer or container being prepared
//	    └── <random>.lock          held (flock) by the process preparing it
//
// Why each piece exists:
//
//   - Layer directories are named by ChainID, which covers the layer's
//     content (its DiffID) and every layer below it, so a layer is stored
//     once however many images share it, and two layers with the same
//     content on different parents stay apart (their whiteouts mean
//     different things).
//   - link and l/ keep mount option strings short: 26 characters per layer
//     instead of 64 + the root, so the kernel's lowerdir= for a deep image
//     stays under a page, as overlay2 does it.
//   - lower lets a mount be assembled from one file, without walking
//     metadata: lowerdir = diff of this layer, then lower.
//   - committed is written last (after everything else is synced and the
//     directory is renamed into place): a layer without it is debris of an
//     interrupted operation, never used, and removed by the next writer.
//   - container-names/ and container-exits/ are the runner's, beside
//     containers/ because a name is taken across containers (a file made
//     with O_EXCL, so two creates cannot both take it) and an exit status
//     outlives its container's directory. The store only names them
//     ([Store.ContainerNameFile], [Store.ContainerExitFile]) and drops exit
//     records older than ten minutes.
//   - images/ is an OCI image layout so that the images are in the format
//     the rest of the ecosystem reads, and so that saving reproduces the
//     very digests that were loaded (the layer tarballs are kept, as
//     containerd keeps its content store beside its snapshots).
//
// # Identity
//
// DiffID is the sha256 of a layer's uncompressed tarball; ChainID is
// DiffID for a bottom layer and sha256(parent ChainID + " " + DiffID)
// above it, as the OCI image spec defines. An image's id is the digest of
// its config. Short ids are the first 12 hex characters.
//
// # Atomicity and crashes
//
// Everything is created under tmp/, filled, synced (a layer's tree: one
// syncfs of the store's filesystem) and renamed into place;
// files are written to a temporary name, fsynced and renamed. A layer
// becomes visible by the rename of its directory and valid by its committed
// marker. The next command that takes the exclusive lock removes what an
// interrupted operation left: tmp/ entries whose .lock nobody holds, and
// layer directories without a committed marker.
//
// # Concurrency
//
// Commands that only read take the store's lock shared; commands that
// change the store fill their temporary directories under the shared lock
// and take it exclusive only to commit, so readers are blocked only for the
// renames. [Store] values are safe for use by one goroutine at a time.
package cowcache
