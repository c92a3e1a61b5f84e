package runner

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/unionfuse/unionfuse/cowcache"
	"github.com/unionfuse/unionfuse/registry"
)

// PullPolicy says when an image is fetched from its registry: docker's
// and podman's --pull of run, create and build.
type PullPolicy int

// The policies. The zero value is docker's default.
const (
	// PullMissing pulls only an image the store lacks.
	PullMissing PullPolicy = iota
	// PullAlways pulls every time; a failed pull is an error even when
	// the store has the image.
	PullAlways
	// PullNever never pulls: an image the store lacks is an error.
	PullNever
	// PullNewer pulls every time but falls back on the stored image when
	// the registry cannot be reached (podman's "newer").
	PullNewer
)

// ParsePullPolicy reads a --pull value: always, missing, never or newer,
// and buildah's true (always) and false (missing).
func ParsePullPolicy(s string) (PullPolicy, error) {
	switch strings.ToLower(s) {
	case "missing", "false":
		return PullMissing, nil
	case "always", "true":
		return PullAlways, nil
	case "never":
		return PullNever, nil
	case "newer":
		return PullNewer, nil
	}
	return 0, fmt.Errorf("invalid pull policy %q: want always, missing, never or newer", s)
}

// Puller fetches images from their registries into the store. The command
// layer's implementation calls registry.Pull and shows its progress; the
// runner and the builder only decide when to call it.
type Puller interface {
	// Pull fetches ref and returns the stored image. missing says the
	// store lacked ref, so that a display can say so first (docker's
	// "Unable to find image 'busybox:latest' locally").
	Pull(ref registry.Reference, missing bool) (cowcache.Image, error)
}

// ErrNoSuchImage is the error of an image the store lacks and that is not
// pulled (no Puller, or PullNever).
var ErrNoSuchImage = errors.New("No such image")

// FindImage returns the image ref of s, pulling it with p as policy says.
// ref is what a user types: a name ("busybox" is busybox:latest, as is
// docker.io/library/busybox), NAME@DIGEST, or an image id or its prefix
// (never pulled). With a nil p nothing is pulled.
func FindImage(s *cowcache.Store, ref string, policy PullPolicy, p Puller) (cowcache.Image, error) {
	img, byID, err := storedImage(s, ref)
	if err != nil && !errors.Is(err, cowcache.ErrNotFound) {
		return cowcache.Image{}, err
	}
	found := err == nil
	if found && (byID || policy == PullMissing || policy == PullNever || p == nil) {
		return img, nil
	}
	rr, perr := registry.ParseReference(ref)
	if !found && (policy == PullNever || p == nil || perr != nil) {
		name := ref
		if perr == nil {
			name = rr.Familiar()
		}
		return cowcache.Image{}, fmt.Errorf("%w: %s", ErrNoSuchImage, name)
	}
	if perr != nil {
		return cowcache.Image{}, perr
	}
	pulled, err := p.Pull(rr, !found)
	if err != nil {
		if found && policy == PullNewer {
			return img, nil
		}
		return cowcache.Image{}, err
	}
	return pulled, nil
}

// storedImage looks ref up in s: as the store names it, then as docker
// prints it ("docker.io/library/busybox" is "busybox:latest"), then among
// the registry digests images were pulled by. byID says ref matched an
// image id rather than a name.
func storedImage(s *cowcache.Store, ref string) (img cowcache.Image, byID bool, err error) {
	img, err = s.Image(ref)
	if err == nil {
		n, nerr := cowcache.NormalizeName(ref)
		return img, nerr != nil || !slices.Contains(img.Names, n), nil
	}
	if !errors.Is(err, cowcache.ErrNotFound) {
		return img, false, err
	}
	rr, perr := registry.ParseReference(ref)
	if perr != nil {
		return img, false, err
	}
	if rr.Digest() == "" {
		if rr.Familiar() == ref {
			return img, false, err
		}
		img, err = s.Image(rr.Familiar())
		return img, false, err
	}
	digests, derr := s.RepoDigests()
	if derr != nil {
		return img, false, derr
	}
	for md, list := range digests {
		if slices.Contains(list, rr.Familiar()) {
			return imageOfManifest(s, md, err)
		}
	}
	return img, false, err
}

// imageOfManifest returns the stored image with manifest md, or notFound.
func imageOfManifest(s *cowcache.Store, md cowcache.Digest, notFound error) (cowcache.Image, bool, error) {
	images, err := s.Images()
	if err != nil {
		return cowcache.Image{}, false, err
	}
	for _, img := range images {
		if img.Manifest == md {
			return img, false, nil
		}
	}
	return cowcache.Image{}, false, notFound
}
