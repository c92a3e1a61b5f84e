// Package wire is the protocol of bench/network between the host and
// nettool in the containers: a connection opens with one byte, Ping
// (answered with one byte, then closed) or Send (the rest is read to EOF,
// then closed).
package wire

import (
	"io"
	"net"
	"time"
)

// The first bytes of a connection.
const (
	Ping = 'p'
	Send = 's'
)

// Serve answers connection c and closes it. After a Send it returns the
// bytes read and the time from the first byte to EOF; after a Ping, 0.
func Serve(c net.Conn) (int64, time.Duration) {
	defer c.Close()
	b := make([]byte, 1<<20)
	if _, err := io.ReadFull(c, b[:1]); err != nil {
		return 0, 0
	}
	if b[0] == Ping {
		c.Write(b[:1])
		return 0, 0
	}
	start := time.Now()
	n, _ := io.CopyBuffer(io.Discard, c, b)
	return n, time.Since(start)
}
