// Package registry is unionfuse's client of OCI distribution registries
// (CNCF distribution, Harbor, Quay, Docker Hub, GHCR): pull, push, login
// and logout, with docker's reference rules, credentials and words.
//
// # Where it sits
//
// Above cowcache, below runner and builder: it speaks the distribution
// protocol through go-containerregistry's remote package (the HTTP
// protocol, token and basic auth, retries, cross-repository mounts) and
// stores through cowcache's exported API (StartDownload for the download
// area, Prepare + ApplyTar for layers, AddImage to make an image visible,
// AddRepoDigest for RepoDigests). It never imports fs/ or runner/, and
// never prints: progress goes to a [Progress] the caller gives, and the
// command layer (cmd/unionfuse) turns it into docker's lines.
//
// # Pull
//
//		reference -> manifest (an index picks the platform) -> config
//		          -> layers: download and unpack in parallel -> AddImage
//
//	  - A layer the store already holds at the same place (same ChainID and
//	    the same blob) is not fetched: "Already exists".
//	  - Blobs download, at most Options.MaxConcurrent at a time, into the
//	    store's download area (cowcache.Download), not into the store
//	    proper. A blob becomes usable only once the whole of it has the
//	    digest the manifest names; a blob the registry corrupted is dropped
//	    and the pull fails naming the layer.
//	  - Each layer is unpacked as soon as its blob is complete, up to
//	    Options.MaxConcurrent at once (a layer is a directory of its own,
//	    whose files do not depend on the layers below; docker unpacks one
//	    after the other), by the unpacker load uses (ApplyDownload: the
//	    blob becomes the layer's tarball by a hard link, not a copy): the
//	    hostile-archive rules (no "..", no writes through links, size
//	    limits), the OCI-to-overlay whiteout conversion, and the DiffID
//	    check against the config all hold for pulled layers as for loaded
//	    ones. Each layer's files are synced as soon as it is unpacked
//	    (Pending.Finish), while the others go on; "Pull complete" is
//	    reported bottom first, as docker does.
//	  - The image appears in one AddImage (one exclusive lock, one rewrite of
//	    the index), so an error, Ctrl-C (the context) or a full disk leaves
//	    nothing partial among images and layers. What was downloaded stays
//	    in the download area, so the next pull of the image fetches only
//	    what is missing, and resumes a half-fetched blob with a ranged
//	    request where the registry allows it; it is removed once the image
//	    is stored.
//	  - Two pulls of one blob at once fetch it once (the download area's
//	    lock); two pulls of one image both succeed, the layer stored once.
//
// # Lazy pulls
//
// With PullOptions.Lazy, a layer in eStargz (estargz.go) is not
// downloaded: its TOC is read by range requests and it is stored as a
// partial layer (lazy.go); LazyLayer fetches, checks and keeps each chunk
// of its files when the union first reads it (lazylayer.go, through
// fs.Config.Fetchers), keeping the compressed bytes it fetched in a copy
// of the blob (blobcopy.go); CompleteLayer or LazyLayer.Complete streams
// the rest of the blob into that copy (blobstream.go) and makes it a
// normal layer (complete.go). `push --compression estargz` writes such
// layers.
//
// # Push
//
// Each layer is checked at the destination first ("Layer already
// exists"), then mounted from a repository of the same registry that the
// image came from or went to ("Mounted from"), and only then uploaded
// ("Pushed"). Layers are sent as stored when compressed; uncompressed ones
// are gzip-compressed (or zstd, Options.Compression), which changes the
// manifest but not the image id. The manifest goes last.
//
// # Transport security and credentials
//
// HTTPS with the system's CAs plus those of /etc/containers/certs.d/HOST/
// and /etc/docker/certs.d/HOST/ (*.crt; client.cert + client.key for a
// client certificate). Plain HTTP and unverified TLS only for insecure
// registries: localhost and 127.0.0.0/8 (as docker), those listed in
// Options.InsecureRegistries (LoadInsecureRegistries reads them from
// unionfuse's and podman's registries.conf files, ConfigFiles), or all
// with Options.Insecure (podman's --tls-verify=false). Any other registry
// answering in plain HTTP is refused.
//
// Credentials are read from, in order: Options.AuthFile, $REGISTRY_AUTH_FILE,
// docker's config.json ($DOCKER_CONFIG or ~/.docker), containers'
// auth.json ($XDG_RUNTIME_DIR/containers, then ~/.config/containers); then
// docker's credential helpers. Login writes docker's config.json, so one
// login serves docker, podman, skopeo and unionfuse.
package registry
