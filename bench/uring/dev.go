package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// INIT flags (include/uapi/linux/fuse.h).
const (
	initMaxPages   = 1 << 22
	initExt        = 1 << 30
	initOverURing2 = 1 << (41 - 32) // FUSE_OVER_IO_URING, in flags2
)

// mountFuse opens /dev/fuse and mounts it on mnt, as fusermount3 would for
// root.
func mountFuse(mnt string) (int, error) {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/fuse: %w", err)
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)
	if err := unix.Mount("uringbench", mnt, "fuse.uringbench", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("mount %s: %w", mnt, err)
	}
	return fd, nil
}

// handshake reads FUSE_INIT from /dev/fuse and answers it; with uring it
// sets FUSE_OVER_IO_URING, which the kernel honours only while enable_uring
// is Y. maxWrite sizes the requests and so the io_uring payload buffers.
func handshake(fd int, uring bool, maxWrite uint32) error {
	buf := make([]byte, 1<<17+4096)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return fmt.Errorf("read INIT: %w", err)
	}
	le := binary.LittleEndian
	if n < inHeaderSize+16 || le.Uint32(buf[4:]) != opInit {
		return fmt.Errorf("first request is not INIT (%d bytes)", n)
	}
	unique := le.Uint64(buf[8:])
	in := buf[inHeaderSize:n]
	kflags := uint64(le.Uint32(in[12:]))
	if kflags&initExt != 0 {
		kflags |= uint64(le.Uint32(in[16:])) << 32
	}
	out := make([]byte, outHeaderSize+64)
	o := out[outHeaderSize:]
	le.PutUint32(o[0:], 7)
	le.PutUint32(o[4:], min(le.Uint32(in[4:]), 45))
	le.PutUint32(o[8:], le.Uint32(in[8:])) // max_readahead
	flags := uint64(initExt | initMaxPages)
	if uring {
		if kflags&(1<<41) == 0 {
			return errors.New("the kernel does not offer FUSE_OVER_IO_URING (enable_uring is N?)")
		}
		flags |= 1 << 41
	}
	le.PutUint32(o[12:], uint32(flags))
	le.PutUint16(o[16:], 16)                            // max_background
	le.PutUint16(o[18:], 12)                            // congestion_threshold
	le.PutUint32(o[20:], maxWrite)                      // max_write
	le.PutUint32(o[24:], 1)                             // time_gran
	le.PutUint16(o[28:], uint16(max(maxWrite/4096, 1))) // max_pages
	le.PutUint32(o[32:], uint32(flags>>32))             // flags2
	le.PutUint32(out[0:], uint32(len(out)))
	le.PutUint64(out[8:], unique)
	if _, err := unix.Write(fd, out); err != nil {
		return fmt.Errorf("write INIT reply: %w", err)
	}
	return nil
}

// serveDev reads requests from /dev/fuse and answers them until the mount
// goes away. Each of threads readers is locked to its own OS thread.
func serveDev(fd int, f *fsys, threads int, maxWrite uint32) (done chan struct{}) {
	done = make(chan struct{})
	left := make(chan struct{}, threads)
	for range threads {
		go func() {
			runtime.LockOSThread()
			defer func() { left <- struct{}{} }()
			devLoop(fd, f, maxWrite)
		}()
	}
	go func() {
		for range threads {
			<-left
		}
		close(done)
	}()
	return done
}

func devLoop(fd int, f *fsys, maxWrite uint32) {
	// The kernel wants room for a WRITE of max_write bytes.
	buf := make([]byte, int(maxWrite)+8192)
	out := make([]byte, outHeaderSize+4096)
	le := binary.LittleEndian
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR || err == unix.ENOENT {
			continue
		}
		if err != nil {
			if err != unix.ENODEV {
				fmt.Fprintln(os.Stderr, "read /dev/fuse:", err)
			}
			return
		}
		op := le.Uint32(buf[4:])
		unique := le.Uint64(buf[8:])
		body := buf[inHeaderSize:n]
		split := min(opInSize[op], len(body))
		errno, size, noReply := f.serve(op, le.Uint64(buf[16:]), body[:split], body[split:], out[outHeaderSize:])
		if noReply {
			continue
		}
		if errno != 0 {
			size = 0
		}
		le.PutUint32(out[0:], uint32(outHeaderSize+size))
		le.PutUint32(out[4:], uint32(-int32(errno)))
		le.PutUint64(out[8:], unique)
		if _, err := unix.Write(fd, out[:outHeaderSize+size]); err != nil && err != unix.ENOENT {
			fmt.Fprintln(os.Stderr, "write /dev/fuse:", err)
		}
	}
}
