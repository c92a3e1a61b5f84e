package fs

import (
	"encoding/binary"
	"unsafe"

	"github.com/unionfuse/unionfuse/internal/ovlfmt"
	"golang.org/x/sys/unix"
)

// Inode numbers that survive unmount and mount, as the kernel's.
//
// On every copy-up of a directory or of a file with one link, the kernel's
// overlay records in overlay.origin on the upper copy a file handle of the
// lower original (struct ovl_fb: version 0, magic 0xfb, length, flags, the
// handle's type, the filesystem's uuid, the handle), marks the upper
// parent overlay.impure = "y", and from then on — in later mounts too —
// reports the original's inode number for the copy, in stat(2) and, in
// impure directories, in readdir's d_ino. unionfuse writes the same
// attributes in the same format and reads them, its own and the kernel's,
// so a file keeps its number across copy-up, remount and a switch between
// the two implementations. The handle is read, not opened: its inode
// number is taken from the handle types of ext4 and xfs (32 or 64 bits,
// generation after it); on other filesystems copies report their own
// numbers after a remount.
const (
	ovlFhVersion    = 0
	ovlFhMagic      = 0xfb
	ovlFbHeaderSize = 21 // version, magic, len, flags, type, uuid[16]

	ovlFhFlagBigEndian = 1 << 0

	fileIDIno32Gen       = 0x01
	fileIDIno32GenParent = 0x02
	fileIDIno64Gen       = 0x81
	fileIDIno64GenParent = 0x82
)

// fsUUIDIoctl is FS_IOC_GETFSUUID: _IOR(0x15, 0, struct fsuuid2).
const fsUUIDIoctl = 0x80111500

// fsUUID returns the uuid of the filesystem fd is on (zero when the
// filesystem has none or does not say).
func fsUUID(fd int) [16]byte {
	var buf [17]byte // struct fsuuid2 { u8 len; u8 uuid[16]; }
	var out [16]byte
	if err := ioctlPtr(fd, fsUUIDIoctl, &buf[0]); err == nil && buf[0] == 16 {
		copy(out[:], buf[1:])
	}
	return out
}

// encodeOrigin returns the overlay.origin value of rel in layer l, or nil
// when its filesystem gives no file handles.
func (ov *overlay) encodeOrigin(l *layer, rel string) []byte {
	// Flags 0: the last component is not followed (AT_SYMLINK_FOLLOW would).
	h, _, err := unix.NameToHandleAt(l.fd, at(rel), 0)
	if err != nil {
		return nil
	}
	fid := h.Bytes()
	if ovlFbHeaderSize+len(fid) > 255 {
		return nil
	}
	b := make([]byte, ovlFbHeaderSize+len(fid))
	b[0], b[1], b[2] = ovlFhVersion, ovlFhMagic, byte(len(b))
	if nativeBigEndian() {
		b[3] = ovlFhFlagBigEndian
	}
	b[4] = byte(h.Type())
	copy(b[5:21], l.uuid[:])
	copy(b[21:], fid)
	return b
}

// originIno returns the inode number an overlay.origin value names, as
// this overlay reports it: the number the lower original has here.
func (ov *overlay) originIno(b []byte) (uint64, bool) {
	if len(b) < ovlFbHeaderSize || b[0] != ovlFhVersion || b[1] != ovlFhMagic || int(b[2]) != len(b) {
		return 0, false
	}
	var order binary.ByteOrder = binary.LittleEndian
	if b[3]&ovlFhFlagBigEndian != 0 {
		order = binary.BigEndian
	}
	fid := b[ovlFbHeaderSize:]
	var ino uint64
	switch b[4] {
	case fileIDIno32Gen, fileIDIno32GenParent:
		if len(fid) < 8 {
			return 0, false
		}
		ino = uint64(order.Uint32(fid))
	case fileIDIno64Gen, fileIDIno64GenParent:
		if len(fid) < 12 {
			return 0, false
		}
		ino = order.Uint64(fid)
	default:
		return 0, false
	}
	// The lower filesystem with that uuid; several with the same one
	// (or none) leave the number unknown. Only ext4's and xfs's handles
	// are known to start with the inode number (tmpfs's type 1 starts
	// with the generation).
	var dev uint64
	found := 0
	for _, l := range ov.layers {
		if l.lower && string(l.uuid[:]) == string(b[5:21]) && (found == 0 || l.dev != dev) {
			if l.fsType != unix.EXT4_SUPER_MAGIC && l.fsType != unix.XFS_SUPER_MAGIC {
				return 0, false
			}
			dev = l.dev
			found++
		}
	}
	if found != 1 {
		return 0, false
	}
	return ov.ownIno(&unix.Stat_t{Dev: dev, Ino: ino}), true
}

// setOrigin records, on tmp in the work directory, the origin of the copy
// being made of rel in src. Best effort: without file handles there is no
// origin, and the copy reports its own number in later mounts.
func (ov *overlay) setOrigin(src *layer, rel, tmp string) {
	if b := ov.encodeOrigin(src, rel); b != nil {
		ov.work.setxattr(tmp, ov.xattr.Origin, b, 0)
	}
}

// fixOrigin records, as the kernel does on lookup, the origin of a merged
// directory whose upper copy has none (made by another tool, or before
// its lower content appeared): the topmost lower directory it merges,
// lowerPath in lower; st is the upper directory. Its parent becomes
// impure; the directory then reports the lower directory's number, here
// and in the kernel. A directory whose number is known already (its
// origin read or made in this mount) costs nothing: this runs on every
// lookup of a merged directory.
func (ov *overlay) fixOrigin(rel string, st *unix.Stat_t, lower *layer, lowerPath string) {
	ov.emu.Lock()
	_, known := ov.copiedUp[devIno{st.Dev, st.Ino}]
	ov.emu.Unlock()
	if known {
		return
	}
	if _, err := ov.upper.getxattr(rel, ov.xattr.Origin, nil); err != unix.ENODATA {
		return
	}
	b := ov.encodeOrigin(lower, lowerPath)
	if b == nil {
		return
	}
	if ov.upper.setxattr(rel, ov.xattr.Origin, b, 0) == nil {
		ov.markImpure(dir(rel))
	}
}

// markImpure marks the upper directory rel as holding objects whose
// numbers come from their origin.
func (ov *overlay) markImpure(rel string) {
	var buf [1]byte
	if n, err := ov.upper.getxattr(rel, ov.xattr.Impure, buf[:]); err == nil && n == 1 && buf[0] == ovlfmt.Yes[0] {
		return
	}
	ov.upper.setxattr(rel, ov.xattr.Impure, []byte(ovlfmt.Yes), 0)
}

// markImpureIfOrigin marks the upper directory dirRel impure when the
// upper object rel, about to move or be linked there, has an origin.
func (ov *overlay) markImpureIfOrigin(dirRel, rel string) {
	if _, err := ov.upper.getxattr(rel, ov.xattr.Origin, nil); err == nil {
		ov.markImpure(dirRel)
	}
}

// isImpure reports whether the upper directory rel is marked impure.
func (ov *overlay) isImpure(rel string) bool {
	var buf [1]byte
	n, err := ov.upper.getxattr(rel, ov.xattr.Impure, buf[:])
	return err == nil && n == 1 && buf[0] == ovlfmt.Yes[0]
}

// upperIno is inoOf for an object of the upper layer: a copy made in this
// mount reports the number recorded then; one made earlier, by unionfuse
// or by the kernel, the number of its origin.
func (ov *overlay) upperIno(rel string, st *unix.Stat_t) uint64 {
	ov.emu.Lock()
	ino, ok := ov.copiedUp[devIno{st.Dev, st.Ino}]
	ov.emu.Unlock()
	if ok {
		return ino
	}
	if b, err := ov.upper.getxattrAll(rel, ov.xattr.Origin); err == nil {
		if ino, ok := ov.originIno(b); ok {
			ov.recordCopyUp(st, ino)
			return ino
		}
	}
	return ov.ownIno(st)
}

// ioctlPtr is ioctl(2) with a pointer argument.
func ioctlPtr(fd int, req uintptr, arg *byte) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(arg))); e != 0 {
		return e
	}
	return nil
}

// nativeBigEndian reports whether this machine stores integers big end
// first (the ovl_fb flag for handles encoded here).
func nativeBigEndian() bool { return binary.NativeEndian.Uint16([]byte{0, 1}) == 1 }
