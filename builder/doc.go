// Package builder builds images from Dockerfiles into a cowcache store,
// the way Docker's classic builder does: one image per step, each step
// cached, RUN steps run in containers.
//
// # Parsing
//
// Dockerfiles are parsed by buildkit's parser and typed instructions
// (line continuations, JSON and shell forms, here-documents, the escape
// directive); words are expanded by buildkit's shell lexer with the ENV of
// the image over the ARGs of the stage. ARGs before the first FROM are
// visible in FROM lines, and in a stage after an ARG that names them.
//
// # Base images
//
// FROM names scratch, an earlier stage, or an image, which
// runner.FindImage looks up in the store and, as Options.Pull says, pulls
// through the builder's runner.Puller (WithPuller): by default only when
// the store lacks it. COPY --from=IMAGE does the same. The builder never
// prints the pull itself; the Puller the command layer gives it does.
//
// # Steps
//
// Every instruction after FROM makes a new image from the one before:
//
//   - ENV, LABEL, CMD, ENTRYPOINT, USER, EXPOSE, VOLUME, STOPSIGNAL, SHELL,
//     HEALTHCHECK, MAINTAINER change only the config: the step's image has
//     the parent's layers and an empty history entry (0B), recorded as
//     "/bin/sh -c #(nop)  CMD [...]".
//   - RUN runs in a container (Executor) on the parent image, with the
//     stage's ARGs in its environment; the container's layer (an overlay
//     upper directory) becomes the step's layer (cowcache.CommitUpper):
//     moved into the store, not copied, once nothing serves it.
//   - COPY and ADD mount a container on the parent image and copy into its
//     root, so that copy-up and the image's symbolic links (/bin ->
//     usr/bin) behave as in Docker; its layer becomes the step's.
//   - WORKDIR makes its directory the same way when it is missing.
//   - ARG declares; it makes no image.
//
// # Cache
//
// A step's key is its parent image, its instruction after expansion (with
// the ARG values RUN sees) and, for COPY and ADD, the digest of the
// sources (names, types, modes, sizes, link targets and contents). A key
// found in the store's cache (cowcache.CachedImage) whose image still
// exists is reused: " ---> Using cache". Changing one source changes that
// step's key and, through the parent, every later one.
//
// # Failure
//
// A failing step removes its container (unmounting it first) and adds no
// image; the steps before it stay in the store and the cache, so the next
// build resumes where this one failed.
package builder
