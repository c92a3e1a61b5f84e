package fs

import (
	"syscall"
)

// Lazy lower layers (Config.Fetchers). A lower layer may be partial: its
// tree is complete (every name, attribute and size), but the data of its
// regular files is fetched on demand, as for an image layer pulled lazily
// (registry's eStargz pulls). Where the data is missing the layer's
// files are holes, so lookups, listings and getattr answer from the
// layer's directory as for any other; only the data path must wait for
// the data, and it does so in three places:
//
//   - read(2) on a handle of the layer's file fetches the range first
//     (handle.Read), and such a handle never uses FUSE passthrough, in
//     which the kernel would read the holes directly;
//   - SEEK_DATA and SEEK_HOLE fetch the whole file, whose holes would
//     otherwise be mistaken for the file's own;
//   - copy-up (and a metacopy file's data copy-up) fetches the whole file
//     before copying it.
//
// A fetch that fails (the registry is unreachable, a chunk does not have
// the digest its table of contents gives) fails the read with EIO and
// one log line naming the layer; nothing is written to the layer then,
// and the next read tries again.

// Fetcher makes the data of a lazy lower layer's files present.
type Fetcher interface {
	// Fetch makes bytes [off, off+n) of the regular file rel (relative to
	// the layer's root) present in the layer's directory. It is called
	// concurrently; a range that is present returns at once.
	Fetch(rel string, off, n int64) error
}

// openFetchers asks cfg.Fetchers for the fetcher of each lower layer.
func (ov *overlay) openFetchers() error {
	if ov.cfg.Fetchers == nil {
		return nil
	}
	for _, l := range ov.layers {
		if !l.lower {
			continue
		}
		f, err := ov.cfg.Fetchers(l.path)
		if err != nil {
			return err
		}
		l.fetch = f
	}
	return nil
}

// fetchData makes bytes [off, off+n) of rel present in l when l is lazy.
func (ov *overlay) fetchData(l *layer, rel string, off, n int64) syscall.Errno {
	if l == nil || l.fetch == nil || n <= 0 {
		return 0
	}
	if err := l.fetch.Fetch(rel, off, n); err != nil {
		ov.logf("lazy layer %s: %s: %v", l.path, rel, err)
		return syscall.EIO
	}
	return 0
}
