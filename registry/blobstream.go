package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// streamStall is how long the stream waits for the registry's next byte
// before it gives up: a connection that stalls would otherwise hold
// completion for good (reads have chunkTimeout of their own).
var streamStall = time.Minute

// errStalled is the cause of a stream given up on (see streamStall).
var errStalled = errors.New("the registry sent nothing")

// blobStream reads a lazy layer's blob from its start to its end, as
// completion consumes it: the ranges the blob copy has from the copy,
// the others from the registry, each gap in one range request, written
// into the copy as they pass (before the reader sees them, so that a
// chunk inflated from them and recorded has its member in the copy).
// A gap that a read fetches meanwhile is not fetched twice: the stream
// goes back to the copy when it reaches it.
type blobStream struct {
	ctx context.Context
	// stalled ends ctx with errStalled when the registry sends nothing
	// for streamStall; it runs only while the stream waits on it.
	stalled *time.Timer
	l       *LazyLayer
	c       *blobCopy
	off     int64

	body    io.ReadCloser // the registry's bytes [off, bodyEnd)
	bodyEnd int64

	err error // the first failure of the registry or the copy; it sticks
}

// newBlobStream streams c's blob (of l) under ctx.
func newBlobStream(ctx context.Context, l *LazyLayer, c *blobCopy) (*blobStream, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(streamStall, func() { cancel(fmt.Errorf("%w for %v", errStalled, streamStall)) })
	t.Stop()
	return &blobStream{ctx: ctx, stalled: t, l: l, c: c}, func() { t.Stop(); cancel(nil) }
}

// waiting runs f, which waits on the registry, under the stall timer.
func (s *blobStream) waiting(f func() error) error {
	s.stalled.Reset(streamStall)
	err := f()
	s.stalled.Stop()
	if err != nil && errors.Is(context.Cause(s.ctx), errStalled) {
		err = context.Cause(s.ctx)
	}
	return err
}

// stallReader reads a registry response under the stream's stall timer.
type stallReader struct {
	s *blobStream
	r io.Reader
}

func (r stallReader) Read(p []byte) (n int, err error) {
	err = r.s.waiting(func() error {
		n, err = r.r.Read(p)
		return err
	})
	return n, err
}

func (s *blobStream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.read(p)
	if err != nil && err != io.EOF {
		s.closeBody()
		s.err = err
	}
	return n, err
}

func (s *blobStream) read(p []byte) (int, error) {
	if s.off >= s.c.size {
		s.closeBody()
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	next, ok := s.c.next(s.off)
	if ok && next.start <= s.off {
		s.closeBody()
		n := int(min(int64(len(p)), next.end-s.off))
		n, err := s.c.f.ReadAt(p[:n], s.off)
		s.off += int64(n)
		if err != nil {
			return n, fmt.Errorf("blob copy: %w", err)
		}
		return n, nil
	}
	if s.body == nil {
		end := s.c.size
		if ok {
			end = next.start
		}
		b, err := s.l.remote(s.ctx)
		if err != nil {
			return 0, err
		}
		err = s.waiting(func() (err error) {
			s.body, err = b.open(s.ctx, s.off, end)
			return err
		})
		if err != nil {
			s.l.disconnect(b)
			return 0, err
		}
		s.bodyEnd = end
	}
	// Whole buffers, so that the copy and the blob file are written in
	// large pieces.
	n, err := io.ReadFull(stallReader{s, s.body}, p[:min(int64(len(p)), s.bodyEnd-s.off)])
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	if n > 0 {
		if werr := s.c.writeAt(p[:n], s.off); werr != nil {
			return 0, werr // the stream ends: a gap in the copy must stay one
		}
		s.off += int64(n)
	}
	if s.off == s.bodyEnd {
		s.closeBody()
		return n, nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, fmt.Errorf("blob at %d: %w", s.off, err)
	}
	return n, nil
}

// closeBody ends the registry request in progress, if any.
func (s *blobStream) closeBody() {
	if s.body != nil {
		s.body.Close()
		s.body = nil
	}
}
