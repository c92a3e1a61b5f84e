package main

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The io_uring ABI (include/uapi/linux/io_uring.h), only what a FUSE queue
// needs: setup with 128-byte SQEs, one IORING_OP_URING_CMD at a time per
// entry, and a blocking io_uring_enter that submits and waits in one call.
const (
	setupCoopTaskrun  = 1 << 8
	setupSQE128       = 1 << 10
	setupSingleIssuer = 1 << 12
	setupDeferTaskrun = 1 << 13

	featSingleMmap = 1 << 0

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	enterGetEvents = 1 << 0

	opURingCmd = 46

	sqeSize = 128 // IORING_SETUP_SQE128
	cqeSize = 16
)

// sqringOffsets is struct io_sqring_offsets.
type sqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

// cqringOffsets is struct io_cqring_offsets.
type cqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, CQEs, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

// params is struct io_uring_params.
type params struct {
	SQEntries, CQEntries, Flags, SQThreadCPU, SQThreadIdle, Features, WQFd uint32
	Resv                                                                   [3]uint32
	SQOff                                                                  sqringOffsets
	CQOff                                                                  cqringOffsets
}

// ring is one io_uring instance used by one OS thread (SINGLE_ISSUER).
type ring struct {
	fd       int
	mem      []byte // SQ and CQ rings (one mapping with FEAT_SINGLE_MMAP)
	cqMem    []byte
	sqes     []byte
	sqHead   *uint32
	sqTail   *uint32
	sqMask   uint32
	sqArray  []uint32
	cqHead   *uint32
	cqTail   *uint32
	cqMask   uint32
	cqesOff  uint32
	entries  uint32
	toSubmit uint32
}

// cqe is one completion: the entry it belongs to and the result.
type cqe struct {
	userData uint64
	res      int32
}

func u32at(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }

// newRing sets up an io_uring with entries SQEs of 128 bytes, for a
// single thread that submits and reaps (SINGLE_ISSUER|DEFER_TASKRUN: the
// kernel's task work, which copies a FUSE request into our buffers, runs
// when that thread waits in io_uring_enter).
func newRing(entries uint32) (*ring, error) {
	var p params
	p.Flags = setupSQE128 | setupSingleIssuer | setupDeferTaskrun | setupCoopTaskrun
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &ring{fd: int(fd), entries: p.SQEntries}
	sqSize := p.SQOff.Array + p.SQEntries*4
	cqSize := p.CQOff.CQEs + p.CQEntries*cqeSize
	if p.Features&featSingleMmap != 0 {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	if r.mem, err = unix.Mmap(r.fd, offSQRing, int(sqSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, fmt.Errorf("mmap sq ring: %w", err)
	}
	r.cqMem = r.mem
	if p.Features&featSingleMmap == 0 {
		if r.cqMem, err = unix.Mmap(r.fd, offCQRing, int(cqSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
			r.close()
			return nil, fmt.Errorf("mmap cq ring: %w", err)
		}
	}
	if r.sqes, err = unix.Mmap(r.fd, offSQEs, int(p.SQEntries*sqeSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, fmt.Errorf("mmap sqes: %w", err)
	}
	r.sqHead = u32at(r.mem, p.SQOff.Head)
	r.sqTail = u32at(r.mem, p.SQOff.Tail)
	r.sqMask = *u32at(r.mem, p.SQOff.RingMask)
	r.sqArray = unsafe.Slice(u32at(r.mem, p.SQOff.Array), p.SQEntries)
	r.cqHead = u32at(r.cqMem, p.CQOff.Head)
	r.cqTail = u32at(r.cqMem, p.CQOff.Tail)
	r.cqMask = *u32at(r.cqMem, p.CQOff.RingMask)
	r.cqesOff = p.CQOff.CQEs
	return r, nil
}

// sqe returns the next free submission entry, zeroed; it is queued for the
// next enter once the caller has filled it.
func (r *ring) sqe() []byte {
	tail := *r.sqTail
	if tail-atomic.LoadUint32(r.sqHead) >= r.entries {
		panic("io_uring submission queue full")
	}
	idx := tail & r.sqMask
	s := r.sqes[idx*sqeSize : (idx+1)*sqeSize]
	clear(s)
	r.sqArray[idx] = idx
	atomic.StoreUint32(r.sqTail, tail+1)
	r.toSubmit++
	return s
}

// uringCmd fills s as an IORING_OP_URING_CMD on fd; cmd is the 80-byte
// command area at offset 48.
func uringCmd(s []byte, fd int, cmdOp uint32, userData uint64) (cmd []byte) {
	s[0] = opURingCmd
	binary.LittleEndian.PutUint32(s[4:], uint32(fd))
	binary.LittleEndian.PutUint32(s[8:], cmdOp)
	binary.LittleEndian.PutUint64(s[32:], userData)
	return s[48:sqeSize]
}

// submitAndWait submits what is queued and waits for at least one
// completion.
func (r *ring) submitAndWait() error {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(r.toSubmit), 1, enterGetEvents, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return fmt.Errorf("io_uring_enter: %w", errno)
		}
		r.toSubmit -= uint32(n)
		if atomic.LoadUint32(r.cqTail) != *r.cqHead {
			return nil
		}
	}
}

// reap calls f for every completion ready and consumes them.
func (r *ring) reap(f func(cqe)) {
	head := *r.cqHead
	tail := atomic.LoadUint32(r.cqTail)
	for ; head != tail; head++ {
		off := r.cqesOff + (head&r.cqMask)*cqeSize
		c := cqe{
			userData: binary.LittleEndian.Uint64(r.cqMem[off:]),
			res:      int32(binary.LittleEndian.Uint32(r.cqMem[off+8:])),
		}
		atomic.StoreUint32(r.cqHead, head+1)
		f(c)
	}
}

func (r *ring) close() {
	if r.sqes != nil {
		unix.Munmap(r.sqes)
	}
	if r.cqMem != nil && len(r.mem) > 0 && &r.cqMem[0] != &r.mem[0] {
		unix.Munmap(r.cqMem)
	}
	if r.mem != nil {
		unix.Munmap(r.mem)
	}
	unix.Close(r.fd)
}
