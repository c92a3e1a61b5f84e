package main

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"syscall"
)

// FUSE opcodes and sizes (include/uapi/linux/fuse.h) for the trivial
// filesystem both transports serve.
const (
	opLookup      = 1
	opForget      = 2
	opGetattr     = 3
	opSetattr     = 4
	opUnlink      = 10
	opRelease     = 18
	opGetxattr    = 22
	opFlush       = 25
	opInit        = 26
	opInterrupt   = 36
	opCreate      = 35
	opDestroy     = 38
	opBatchForget = 42

	inHeaderSize  = 40
	outHeaderSize = 16
	attrSize      = 88
	entryOutSize  = 40 + attrSize
	attrOutSize   = 16 + attrSize
	openOutSize   = 16
)

// opInSize is the size of each opcode's fixed argument (in_args[0]): over
// io_uring the kernel puts it in the header's op_in area and the rest in the
// payload; over /dev/fuse both follow the in header.
var opInSize = map[uint32]int{
	opLookup: 0, opGetattr: 16, opSetattr: 88, opUnlink: 0, opCreate: 16,
	opRelease: 24, opFlush: 24, opGetxattr: 8,
}

// fsys is the trivial filesystem: a root directory holding regular files
// that exist only as names. Every reply has zero cache timeouts, so each
// system call reaches the server.
type fsys struct {
	mu    sync.Mutex
	names map[string]uint64
	next  uint64
	reqs  atomic.Int64
	// ringReqs counts the requests that came through io_uring queues.
	ringReqs atomic.Int64
}

func newFsys() *fsys { return &fsys{names: map[string]uint64{}, next: 2} }

// cstring returns the NUL-terminated name at the start of b.
func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func putAttr(b []byte, ino uint64, mode uint32) {
	clear(b[:attrSize])
	le := binary.LittleEndian
	le.PutUint64(b[0:], ino)
	le.PutUint32(b[60:], mode) // after ino,size,blocks,atime,mtime,ctime,3 nsec fields
	nlink := uint32(1)
	if mode&syscall.S_IFDIR != 0 {
		nlink = 2
	}
	le.PutUint32(b[64:], nlink)
	le.PutUint32(b[80:], 4096) // blksize
}

func putEntry(b []byte, ino uint64, mode uint32) int {
	clear(b[:40])
	binary.LittleEndian.PutUint64(b[0:], ino)
	putAttr(b[40:], ino, mode)
	return entryOutSize
}

func (f *fsys) mode(ino uint64) uint32 {
	if ino == 1 {
		return syscall.S_IFDIR | 0o755
	}
	return syscall.S_IFREG | 0o644
}

// serve answers one request: opIn is the opcode's fixed argument, payload
// what follows it; the reply's arguments go to out. It returns the errno
// (0 for success) and the reply's size; noReply is set for requests the
// kernel expects no answer to.
func (f *fsys) serve(op uint32, nodeid uint64, opIn, payload, out []byte) (errno syscall.Errno, n int, noReply bool) {
	f.reqs.Add(1)
	switch op {
	case opForget, opBatchForget, opInterrupt:
		return 0, 0, true
	case opLookup:
		name := cstring(payload)
		f.mu.Lock()
		ino, ok := f.names[name]
		f.mu.Unlock()
		if nodeid != 1 || !ok {
			return syscall.ENOENT, 0, false
		}
		return 0, putEntry(out, ino, f.mode(ino)), false
	case opGetattr, opSetattr:
		clear(out[:16])
		putAttr(out[16:], nodeid, f.mode(nodeid))
		return 0, attrOutSize, false
	case opCreate:
		name := cstring(payload)
		f.mu.Lock()
		ino, ok := f.names[name]
		if !ok {
			ino = f.next
			f.next++
			f.names[name] = ino
		}
		f.mu.Unlock()
		n := putEntry(out, ino, f.mode(ino))
		clear(out[n : n+openOutSize])
		return 0, n + openOutSize, false
	case opUnlink:
		name := cstring(payload)
		f.mu.Lock()
		_, ok := f.names[name]
		delete(f.names, name)
		f.mu.Unlock()
		if !ok {
			return syscall.ENOENT, 0, false
		}
		return 0, 0, false
	case opRelease, opFlush:
		return 0, 0, false
	case opGetxattr:
		return syscall.ENODATA, 0, false
	}
	return syscall.ENOSYS, 0, false
}
