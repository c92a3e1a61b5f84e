package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FUSE over io_uring (fs/fuse/dev_uring.c, include/uapi/linux/fuse.h).
//
// Each entry owns two buffers, registered once with
// FUSE_IO_URING_CMD_REGISTER (sqe->addr points to iovec[2]):
//
//	header  struct fuse_uring_req_header (288 bytes)
//	          0   in_out   fuse_in_header on fetch, fuse_out_header on commit
//	        128   op_in    the opcode's fixed argument (in_args[0])
//	        256   ring_ent_in_out {flags, commit_id, payload_sz, ...}
//	payload the remaining arguments; the reply's arguments on commit
//
// The kernel completes the command when a request is in the buffers; the
// answer goes back with FUSE_IO_URING_CMD_COMMIT_AND_FETCH (commit_id = the
// request's unique), which also makes the entry wait for the next request.
// The command area (80 bytes at SQE offset 48) is struct fuse_uring_cmd_req
// {flags u64, commit_id u64, qid u16}.
const (
	cmdRegister       = 1
	cmdCommitAndFetch = 2

	hdrSize       = 288
	hdrOpIn       = 128
	hdrPayloadSz  = 256 + 16
	payloadMinium = 8192 // FUSE_MIN_READ_BUFFER
)

type entry struct {
	hdr, payload []byte
	iov          [2]unix.Iovec
}

// uringQueue is the queue of one CPU: one io_uring, depth entries, served
// by one goroutine locked to an OS thread pinned to that CPU. The kernel
// puts a request on the queue of the CPU the caller runs on.
type uringQueue struct {
	qid   int
	devfd int
	f     *fsys
	r     *ring
	ents  []*entry
	mem   []byte
	out   []byte
}

// payloadSize is the kernel's ring->max_payload_sz for a mount with this
// max_write and max_pages = max_write/4096: the smallest payload buffer
// REGISTER accepts.
func payloadSize(maxWrite uint32) int {
	return max(payloadMinium, int(maxWrite))
}

// startQueues registers one queue per possible CPU and serves them until
// the connection ends. It returns once every queue has submitted its
// REGISTER commands (or with the first error).
func startQueues(devfd int, f *fsys, depth int, maxWrite uint32, pin bool) (done chan struct{}, err error) {
	ncpu := numQueues()
	registered := make(chan error, ncpu)
	done = make(chan struct{})
	left := make(chan struct{}, ncpu)
	for qid := range ncpu {
		q := &uringQueue{qid: qid, devfd: devfd, f: f}
		go func() {
			defer func() { left <- struct{}{} }()
			q.run(depth, payloadSize(maxWrite), pin, registered)
		}()
	}
	go func() {
		for range ncpu {
			<-left
		}
		close(done)
	}()
	for range ncpu {
		if e := <-registered; e != nil && err == nil {
			err = e
		}
	}
	return done, err
}

func (q *uringQueue) run(depth, psize int, pin bool, registered chan<- error) {
	runtime.LockOSThread() // never unlocked: the thread ends with the queue
	if pin {
		var set unix.CPUSet
		set.Set(q.qid)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			registered <- fmt.Errorf("queue %d: pin to CPU: %w", q.qid, err)
			return
		}
	}
	r, err := newRing(uint32(depth))
	if err != nil {
		registered <- fmt.Errorf("queue %d: %w", q.qid, err)
		return
	}
	q.r = r
	defer r.close()
	per := (hdrSize + 4095) &^ 4095
	per += (psize + 4095) &^ 4095
	q.mem, err = unix.Mmap(-1, 0, depth*per, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		registered <- fmt.Errorf("queue %d: buffers: %w", q.qid, err)
		return
	}
	defer unix.Munmap(q.mem)
	q.out = make([]byte, 4096)
	for i := range depth {
		b := q.mem[i*per : (i+1)*per]
		e := &entry{hdr: b[:hdrSize], payload: b[(hdrSize+4095)&^4095:][:psize]}
		e.iov[0] = unix.Iovec{Base: &e.hdr[0]}
		e.iov[0].SetLen(hdrSize)
		e.iov[1] = unix.Iovec{Base: &e.payload[0]}
		e.iov[1].SetLen(psize)
		q.ents = append(q.ents, e)
		s := r.sqe()
		cmd := uringCmd(s, q.devfd, cmdRegister, uint64(i))
		binary.LittleEndian.PutUint64(s[16:], uint64(uintptr(unsafe.Pointer(&e.iov[0]))))
		binary.LittleEndian.PutUint32(s[24:], 2)
		binary.LittleEndian.PutUint16(cmd[16:], uint16(q.qid))
	}
	// Submit without waiting: a REGISTER that fails completes at once.
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(r.toSubmit), 0, 0, 0, 0); errno != 0 {
		registered <- fmt.Errorf("queue %d: submit REGISTER: %w", q.qid, errno)
		return
	}
	r.toSubmit = 0
	var regErr error
	r.reap(func(c cqe) {
		if c.res < 0 && regErr == nil {
			regErr = fmt.Errorf("queue %d: REGISTER: %w", q.qid, unix.Errno(-c.res))
		}
	})
	registered <- regErr
	if regErr != nil {
		return
	}
	for {
		if err := r.submitAndWait(); err != nil {
			fmt.Fprintf(os.Stderr, "queue %d: %v\n", q.qid, err)
			return
		}
		stop := false
		r.reap(func(c cqe) {
			if c.res < 0 {
				// ENOTCONN/ECANCELED: the connection is being torn down.
				stop = true
				return
			}
			q.handle(int(c.userData))
		})
		if stop {
			return
		}
	}
}

// handle answers the request in entry i and queues its commit-and-fetch.
func (q *uringQueue) handle(i int) {
	le := binary.LittleEndian
	e := q.ents[i]
	op := le.Uint32(e.hdr[4:])
	unique := le.Uint64(e.hdr[8:])
	nodeid := le.Uint64(e.hdr[16:])
	psz := le.Uint32(e.hdr[hdrPayloadSz:])
	opIn := e.hdr[hdrOpIn : hdrOpIn+opInSize[op]]
	q.f.ringReqs.Add(1)
	errno, n, _ := q.f.serve(op, nodeid, opIn, e.payload[:psz], q.out)
	if errno != 0 {
		n = 0
	}
	copy(e.payload, q.out[:n])
	le.PutUint32(e.hdr[0:], uint32(outHeaderSize+n))
	le.PutUint32(e.hdr[4:], uint32(-int32(errno)))
	le.PutUint64(e.hdr[8:], unique)
	le.PutUint32(e.hdr[hdrPayloadSz:], uint32(n))
	cmd := uringCmd(q.r.sqe(), q.devfd, cmdCommitAndFetch, uint64(i))
	le.PutUint64(cmd[8:], unique)
	le.PutUint16(cmd[16:], uint16(q.qid))
}
