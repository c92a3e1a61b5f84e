package ovlfmt

import "strings"

// The AUFS names of image layers (the OCI image spec's "whiteouts"; moby's
// archive.WhiteoutPrefix and friends).
const (
	// AufsPrefix starts every AUFS marker: ".wh.NAME" hides NAME.
	AufsPrefix = ".wh."
	// AufsMetaPrefix starts AUFS metadata (".wh..wh.plnk", ...), never
	// shown and never a whiteout.
	AufsMetaPrefix = AufsPrefix + AufsPrefix
	// AufsOpaque in a directory makes it opaque.
	AufsOpaque = AufsMetaPrefix + ".opq"
)

// IsAufsName reports whether name is an AUFS marker or metadata rather
// than a user's file.
func IsAufsName(name string) bool { return strings.HasPrefix(name, AufsPrefix) }

// AufsWhiteout returns the name of the AUFS whiteout that hides name.
func AufsWhiteout(name string) string { return AufsPrefix + name }

// AufsHidden returns the name that the AUFS whiteout name hides; ok is
// false when name is no whiteout (a user's file, metadata or the opaque
// marker).
func AufsHidden(name string) (hidden string, ok bool) {
	hidden, ok = strings.CutPrefix(name, AufsPrefix)
	if !ok || hidden == "" || IsAufsName(hidden) {
		return "", false
	}
	return hidden, true
}
