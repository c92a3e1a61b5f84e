// Package partial names the on-disk mark of a partial layer: a store
// layer pulled lazily, whose files' data is not all local yet (see
// cowcache's partial.go for the layout, registry's lazy.go for how it is
// filled). It is its own package so that the union's daemon, which links
// neither the store nor the registry, can tell such a layer from a
// complete one by its directory alone.
package partial

import (
	"os"
	"path/filepath"
)

// DirName is the directory of a partial layer's state, beside its diff/.
const DirName = "partial"

// BlobName, in DirName, holds the layer's blob digest; it is the mark:
// present exactly while the layer is partial.
const BlobName = "blob"

// Dir returns the state directory of the layer whose diff/ is diffDir,
// and whether the layer is partial.
func Dir(diffDir string) (string, bool) {
	d := filepath.Join(filepath.Dir(diffDir), DirName)
	_, err := os.Stat(filepath.Join(d, BlobName))
	return d, err == nil
}

// Any reports whether one of dirs is the diff/ of a partial layer.
func Any(dirs []string) bool {
	for _, d := range dirs {
		if _, ok := Dir(d); ok {
			return true
		}
	}
	return false
}
