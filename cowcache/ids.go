package cowcache

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
)

// Digest is a content address in the OCI form "sha256:<64 hex digits>".
type Digest string

// ShortIDLen is how many hex digits of an id the commands print.
const ShortIDLen = 12

// shortLinkLen is the length of a layer's short name in l/ (as overlay2).
const shortLinkLen = 26

// FromBytes returns the sha256 digest of b.
func FromBytes(b []byte) Digest {
	sum := sha256.Sum256(b)
	return Digest("sha256:" + hex.EncodeToString(sum[:]))
}

// ParseDigest checks that s is a sha256 digest and returns it.
func ParseDigest(s string) (Digest, error) {
	hexPart, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		return "", fmt.Errorf("digest %q: want sha256:<64 hex digits>", s)
	}
	if len(hexPart) != 64 || strings.Trim(hexPart, "0123456789abcdef") != "" {
		return "", fmt.Errorf("digest %q: want 64 lowercase hex digits", s)
	}
	return Digest(s), nil
}

// Hex returns the digest without its algorithm.
func (d Digest) Hex() string {
	_, h, _ := strings.Cut(string(d), ":")
	return h
}

// Short returns the first ShortIDLen hex digits, as the commands print ids.
func (d Digest) Short() string {
	h := d.Hex()
	if len(h) > ShortIDLen {
		return h[:ShortIDLen]
	}
	return h
}

// String returns the digest as "sha256:<hex>".
func (d Digest) String() string { return string(d) }

// ChainID returns the ChainID of a layer whose DiffID is diffID on top of
// the layer whose ChainID is parent ("" for a bottom layer), as the OCI
// image spec defines it: ChainID(L0) = DiffID(L0) and
// ChainID(L0|...|Ln) = sha256(ChainID(L0|...|Ln-1) + " " + DiffID(Ln)).
func ChainID(parent, diffID Digest) Digest {
	if parent == "" {
		return diffID
	}
	return FromBytes([]byte(string(parent) + " " + string(diffID)))
}

// ChainIDs returns the ChainIDs of a stack of layers given by their DiffIDs,
// bottom first (the order of an image config's rootfs.diff_ids).
func ChainIDs(diffIDs []Digest) []Digest {
	out := make([]Digest, len(diffIDs))
	var parent Digest
	for i, d := range diffIDs {
		parent = ChainID(parent, d)
		out[i] = parent
	}
	return out
}

// randomName returns n random characters from [A-Z2-7], for short links
// and temporary directories.
func randomName(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	s := base32.StdEncoding.EncodeToString(b)
	return s[:n]
}
