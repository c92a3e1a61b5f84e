package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// dockerHub is how docker names Docker Hub's registry when it prints it;
// go-containerregistry calls it index.docker.io.
const dockerHub = "docker.io"

// Reference is an image in a registry, parsed with docker's rules:
// "busybox" is docker.io/library/busybox:latest, "localhost:5000/app" is
// the repository app on the registry localhost:5000, and
// "NAME@sha256:..." names a manifest (or index) by digest.
type Reference struct {
	ref        name.Reference
	defaultTag bool
}

// ParseReference parses an image reference as docker does.
func ParseReference(s string) (Reference, error) {
	if s == "" || strings.TrimSpace(s) != s {
		return Reference{}, fmt.Errorf("invalid reference format %q", s)
	}
	ref, err := name.ParseReference(s, name.StrictValidation)
	if err != nil {
		// StrictValidation refuses a missing tag; anything else is a bad name.
		ref, err = name.ParseReference(s)
		if err != nil {
			return Reference{}, fmt.Errorf("invalid reference format %q: %w", s, err)
		}
		return Reference{ref: ref, defaultTag: true}, nil
	}
	return Reference{ref: ref}, nil
}

// Name returns go-containerregistry's reference.
func (r Reference) Name() name.Reference { return r.ref }

// Registry returns the registry's host[:port] as docker prints it
// ("docker.io", "localhost:5000").
func (r Reference) Registry() string { return registryName(r.ref.Context().Registry) }

func registryName(reg name.Registry) string {
	if reg.RegistryStr() == name.DefaultRegistry {
		return dockerHub
	}
	return reg.RegistryStr()
}

// Path returns the repository's path in its registry ("library/busybox").
func (r Reference) Path() string { return r.ref.Context().RepositoryStr() }

// FullRepository returns the repository with its registry
// ("docker.io/library/busybox").
func (r Reference) FullRepository() string { return r.Registry() + "/" + r.Path() }

// Repository returns the repository as docker prints it: without
// docker.io/ and library/ ("busybox", "localhost:5000/app").
func (r Reference) Repository() string {
	if r.Registry() != dockerHub {
		return r.FullRepository()
	}
	return strings.TrimPrefix(r.Path(), "library/")
}

// Tag returns the tag ("latest" when none was given), or "" for a
// reference by digest.
func (r Reference) Tag() string {
	if t, ok := r.ref.(name.Tag); ok {
		return t.TagStr()
	}
	return ""
}

// Digest returns the digest of a reference by digest, else "".
func (r Reference) Digest() string {
	if d, ok := r.ref.(name.Digest); ok {
		return d.DigestStr()
	}
	return ""
}

// DefaultTag reports whether no tag nor digest was given (docker says
// "Using default tag: latest").
func (r Reference) DefaultTag() bool { return r.defaultTag }

// Familiar returns the reference as docker prints it in its short form
// ("busybox:latest", "localhost:5000/app@sha256:..."): the name the store
// keeps.
func (r Reference) Familiar() string {
	if d := r.Digest(); d != "" {
		return r.Repository() + "@" + d
	}
	return r.Repository() + ":" + r.Tag()
}

// String returns the full reference ("docker.io/library/busybox:latest"),
// what docker pull prints last.
func (r Reference) String() string {
	if d := r.Digest(); d != "" {
		return r.FullRepository() + "@" + d
	}
	return r.FullRepository() + ":" + r.Tag()
}

// RepoDigest returns REPOSITORY@DIGEST as docker inspect's RepoDigests
// shows it, for the manifest or index digest d.
func (r Reference) RepoDigest(d string) string { return r.Repository() + "@" + d }

// Tags returns a reference to each tag of ref's repository (pull -a).
func Tags(ctx context.Context, ref Reference, o Options) ([]Reference, error) {
	rr, ropts, _, err := o.connect(ctx, ref)
	if err != nil {
		return nil, err
	}
	tags, err := remote.List(rr.Context(), ropts...)
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", ref.Repository(), describeError(err))
	}
	var out []Reference
	for _, t := range tags {
		out = append(out, Reference{ref: rr.Context().Tag(t)})
	}
	return out, nil
}
