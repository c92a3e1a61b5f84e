package fs

import (
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Data-only lower layers (Config.DataLowers; the kernel's
// lowerdir=l1::data1::data2 and datadir+=, Linux 6.5+).
//
// They come after the normal lower layers (after bottom) and take no part
// in the merged namespace: the root does not list them, and no lookup
// descends into them. A metacopy file of a normal lower layer whose
// absolute redirect ("/a/blob") leads nowhere in the normal layers below
// it has its data there instead: the path is looked up in each data-only
// layer in turn, without following symbolic links or leaving the layer,
// and must be a regular file (the kernel's ovl_lookup_data_layers). The
// kernel defers that lookup to the first open, so a missing blob fails
// the open, not the stat: entry.dataErr keeps the error for the open. As
// in Linux 6.16+, this lower-to-data redirect is followed whatever
// metacopy= and redirect_dir= say.

// openDataLayers opens the data-only layers and numbers them after the
// normal lowers.
func (ov *overlay) openDataLayers(dirs []string) error {
	for _, d := range dirs {
		l, err := openLayer(d)
		if err != nil {
			return err
		}
		l.lower = true
		if _, ok := ov.devIndex[l.dev]; !ok {
			ov.devIndex[l.dev] = uint64(len(ov.devIndex))
		}
		ov.dataLayers = append(ov.dataLayers, len(ov.layers))
		ov.layers = append(ov.layers, l)
	}
	return nil
}

// lookupData finds the data of a metacopy file whose absolute redirect is
// redirect in the data-only layers: the first layer holding a regular file
// there, its path in that layer and its attributes.
func (ov *overlay) lookupData(redirect string, st *unix.Stat_t) (int, string, syscall.Errno) {
	p := strings.TrimPrefix(redirect, "/")
	errno := syscall.ENOENT
	for _, li := range ov.dataLayers {
		fd, err := unix.Openat2(ov.layers[li].fd, p, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV,
		})
		if err != nil {
			errno = errnoOf(err)
			continue
		}
		err = unix.Fstat(fd, st)
		unix.Close(fd)
		switch {
		case err != nil:
			errno = errnoOf(err)
		case st.Mode&unix.S_IFMT != unix.S_IFREG:
			errno = syscall.ENOENT // only a regular file is data
		default:
			return li, p, 0
		}
	}
	return -1, "", errno
}
