package fs

import (
	"bytes"
	"iter"
	"slices"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reading layer directories.
//
// Records were once decoded as they came, a string allocated per name and
// appended to a slice that grew as it went (by a quarter at a time once
// large): for 20,000 names in three layers 21,400 allocations and 4.9 MB,
// most of it copies the growth left behind, which a fresh daemon faults
// in page by page and collects four times over. Now a listing first reads
// every directory it needs in getdents64's own format into pooled
// buffers, counting records and name bytes; a merged listing then walks
// the records where they lie (direntIter) and copies the names it keeps
// into one block of the exact size, and readLayerDir decodes them into a
// slice of the exact size (docs/benchmarks.md, "A large directory's first
// listing").

// rawDirent is one record of a layer directory as getdents64 returns it.
// Decoded names share one block per listing: whatever keeps a name longer
// than the listing (a node, a map of the layer) keeps a copy (strings.Clone),
// not the whole block.
type rawDirent struct {
	name string
	ino  uint64
	typ  uint8
}

// direntBufSize is the size of a getdents64 buffer.
const direntBufSize = 64 << 10

// direntBufs holds getdents64 buffers between listings: a walk lists
// thousands of directories, and a fresh 64 KiB each was most of its
// garbage.
var direntBufs = sync.Pool{New: func() any { return new([direntBufSize]byte) }}

// minDirentRoom is the least room a buffer must have left to be handed to
// getdents64 again: a record with the longest name (255 bytes) takes 280,
// and a buffer too small for the next record is an error (EINVAL).
const minDirentRoom = 4 << 10

// direntNameOff is the offset of the name in a getdents64 record.
const direntNameOff = int(unsafe.Offsetof(unix.Dirent{}.Name))

// direntReader reads the records of one or more directories into pooled
// buffers, where they are walked (iter) or from where they are decoded
// (decode), and gives the buffers back (release).
type direntReader struct {
	bufs   []*[direntBufSize]byte
	filled []int // bytes of records in each buffer
	// records and nameBytes count what decode will give: the records other
	// than "." and "..", and the bytes of their names.
	records, nameBytes int
}

// direntSpan is where read put the records of one directory: from
// buffer fromBuf at offset fromOff to buffer toBuf at offset toOff.
type direntSpan struct{ fromBuf, fromOff, toBuf, toOff int }

// read adds the records of directory rel of layer l and returns where
// they are and how many there are besides "." and "..". On an error
// nothing of it is kept.
func (r *direntReader) read(l *layer, rel string) (direntSpan, int, error) {
	fd, err := openat(l.fd, at(rel), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return direntSpan{}, 0, err
	}
	defer unix.Close(fd)
	nbufs, nameBytes := len(r.bufs), r.nameBytes
	lastFilled := 0
	if nbufs > 0 {
		lastFilled = r.filled[nbufs-1]
	}
	sp := direntSpan{fromBuf: max(nbufs-1, 0), fromOff: lastFilled}
	count := 0
	for {
		last := len(r.bufs) - 1
		if last < 0 || direntBufSize-r.filled[last] < minDirentRoom {
			r.bufs = append(r.bufs, direntBufs.Get().(*[direntBufSize]byte))
			r.filled = append(r.filled, 0)
			last++
		}
		buf := r.bufs[last][r.filled[last]:]
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			// Forget what this directory added.
			for _, b := range r.bufs[nbufs:] {
				direntBufs.Put(b)
			}
			r.bufs, r.filled = r.bufs[:nbufs], r.filled[:nbufs]
			if nbufs > 0 {
				r.filled[nbufs-1] = lastFilled
			}
			r.nameBytes = nameBytes
			return direntSpan{}, 0, err
		}
		if n <= 0 {
			r.records += count
			sp.toBuf, sp.toOff = last, r.filled[last]
			return sp, count, nil
		}
		forDirents(buf[:n], func(name []byte, ino uint64, typ uint8) {
			count++
			r.nameBytes += len(name)
		})
		r.filled[last] += n
	}
}

// direntIter walks the records of one span of a direntReader.
type direntIter struct {
	r        *direntReader
	sp       direntSpan
	buf, off int
}

// iter returns a walk over the records of sp.
func (r *direntReader) iter(sp direntSpan) direntIter {
	return direntIter{r: r, sp: sp, buf: sp.fromBuf, off: sp.fromOff}
}

// next returns the next record other than "." and "..", ok false at the
// end. The name lies in the reader's buffer: it is valid until release,
// and whatever keeps it longer keeps a copy.
func (it *direntIter) next() (name string, ino uint64, typ uint8, ok bool) {
	for it.buf <= it.sp.toBuf {
		end := it.r.filled[it.buf]
		if it.buf == it.sp.toBuf {
			end = it.sp.toOff
		}
		if it.off >= end {
			it.buf, it.off = it.buf+1, 0
			continue
		}
		b := it.r.bufs[it.buf]
		d := (*unix.Dirent)(unsafe.Pointer(&b[it.off]))
		nb := b[it.off+direntNameOff : it.off+int(d.Reclen)]
		if i := bytes.IndexByte(nb, 0); i >= 0 {
			nb = nb[:i]
		}
		it.off += int(d.Reclen)
		if isDotName(nb) || len(nb) == 0 {
			continue
		}
		return unsafe.String(&nb[0], len(nb)), d.Ino, d.Type, true
	}
	return "", 0, 0, false
}

// names returns the names of the records of sp, valid until release.
func (r *direntReader) names(sp direntSpan) iter.Seq[string] {
	return func(yield func(string) bool) {
		it := r.iter(sp)
		for name, _, _, ok := it.next(); ok; name, _, _, ok = it.next() {
			if !yield(name) {
				return
			}
		}
	}
}

// decode appends every record read to out, in the order read.
func (r *direntReader) decode(out []rawDirent) []rawDirent {
	if len(r.bufs) == 0 {
		return out
	}
	out = slices.Grow(out, r.records)
	// Exactly sized, so appends never move it and the names made from it
	// stay put.
	names := make([]byte, 0, r.nameBytes)
	last := len(r.bufs) - 1
	it := r.iter(direntSpan{toBuf: last, toOff: r.filled[last]})
	for name, ino, typ, ok := it.next(); ok; name, ino, typ, ok = it.next() {
		start := len(names)
		names = append(names, name...)
		out = append(out, rawDirent{name: unsafe.String(&names[start], len(name)), ino: ino, typ: typ})
	}
	return out
}

// release gives the buffers back to the pool.
func (r *direntReader) release() {
	for _, b := range r.bufs {
		direntBufs.Put(b)
	}
	*r = direntReader{}
}

// forDirents calls fn for each record of the getdents64 output buf other
// than "." and "..", with the record's name (within buf), inode number
// and type.
func forDirents(buf []byte, fn func(name []byte, ino uint64, typ uint8)) {
	for off := 0; off < len(buf); {
		d := (*unix.Dirent)(unsafe.Pointer(&buf[off]))
		name := buf[off+direntNameOff : off+int(d.Reclen)]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		off += int(d.Reclen)
		if isDotName(name) {
			continue
		}
		fn(name, d.Ino, d.Type)
	}
}

// isDotName reports whether name is "." or "..".
func isDotName(name []byte) bool {
	return len(name) == 1 && name[0] == '.' || len(name) == 2 && name[0] == '.' && name[1] == '.'
}

// readLayerDir lists the directory rel of layer l, without "." and "..".
func readLayerDir(l *layer, rel string) ([]rawDirent, error) {
	var r direntReader
	defer r.release()
	if _, _, err := r.read(l, rel); err != nil {
		return nil, err
	}
	return r.decode(nil), nil
}

// direntMode converts a getdents type to the S_IFMT bits of a mode.
func direntMode(typ uint8) uint32 {
	switch typ {
	case unix.DT_DIR:
		return unix.S_IFDIR
	case unix.DT_LNK:
		return unix.S_IFLNK
	case unix.DT_CHR:
		return unix.S_IFCHR
	case unix.DT_BLK:
		return unix.S_IFBLK
	case unix.DT_FIFO:
		return unix.S_IFIFO
	case unix.DT_SOCK:
		return unix.S_IFSOCK
	default:
		return unix.S_IFREG
	}
}
