// Package snapshotter is a containerd snapshotter whose container
// root filesystems are unionfuse mounts: containerd (or nerdctl, k3s,
// BuildKit) stores image layers through it and mounts what it returns,
// by default bind mounts of unions that one union server serves
// (internal/unionserver), or, in the helper form (WithMountHelper),
// `fuse3.unionfuse-fuse` mounts that containerd performs by running
// mount.fuse3, which runs `unionfuse-fuse SOURCE TARGET -o OPTIONS`.
//
// It implements containerd's snapshots.Snapshotter with containerd's own
// semantics (active, committed and view snapshots; parent chains; labels,
// Walk filters and Update field paths) and is served over containerd's
// gRPC snapshots API (Serve) as a proxy plugin:
//
//	[proxy_plugins.unionfuse]
//	  type = "snapshot"
//	  address = "/run/unionfuse/snapshotter.sock"
//
// # On-disk layout
//
// The root is laid out as containerd's overlayfs snapshotter lays out
// its own, so what an operator knows of one holds for the other:
//
//	ROOT/
//	  metadata.db          snapshot keys, kinds, parents, labels, sizes
//	                       (containerd's snapshots/storage bolt file)
//	  snapshots/
//	    <id>/fs            the snapshot's files: the upper directory of
//	                       an active snapshot, a layer once committed
//	    <id>/work          unionfuse's workdir (copy-up staging); active
//	                       snapshots only
//	    <id>/merged        where the union server mounts the union
//	    new-<random>/      a snapshot being created, renamed to <id> in
//	                       the metadata transaction that records it
//	  unions.log           the union server's log
//
// The ids are the metadata store's; everything under snapshots/ that no
// metadata names (a crash between the rename and the commit, a removal
// whose deletion was cut short) is deleted by Cleanup.
//
// Why this store and not cowcache's: containerd names snapshots by its
// own keys, links them by parent keys, and walks them with label
// filters; containerd's storage package keeps exactly that model, and
// its tests and containerd's own snapshotters keep it right. cowcache's
// store is keyed by layer content and image, which containerd already
// tracks itself, and adopting it would mean a second mapping from keys
// to layers kept in step with the first.
//
// # Mounts
//
//   - no parent: a bind mount of <id>/fs (read-write; read-only for a
//     view), as containerd's overlayfs snapshotter returns;
//   - a view with one parent: a read-only bind mount of the parent's fs;
//   - an active snapshot with parents: the union of
//     lowerdir=<parents' fs, nearest first>,upperdir=<id>/fs,workdir=<id>/work;
//   - a view with several parents: the union of only lowerdir=, which
//     unionfuse serves read-only.
//
// A union is, by default, served by the union server at <id>/merged from
// the snapshot's creation until it is committed or removed, and returned
// as a bind mount of <id>/merged: a container start then costs containerd
// one bind mount, not the start of a helper and a daemon. With
// WithMountHelper it is returned as a mount of type fuse3.HELPER with
// those options, and containerd mounts it through mount.fuse3.
//
// Not root of the initial user namespace (a rootless containerd under
// rootlesskit, root only in its user namespace), the unions get
// userxattr, as the kernel's overlayfs takes it there: whiteouts and
// opaque markers in user.overlay.* extended attributes.
package snapshotter
