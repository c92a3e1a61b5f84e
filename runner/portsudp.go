package runner

import (
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A published UDP port (-p HOSTPORT:CONTAINERPORT/udp) is relayed as
// docker's userland proxy does: a flow per client address, each with a
// UDP socket of its own made in the container's network namespace and
// connected to the container port on its loopback; replies go back to
// the client from the host port. A flow idle for udpIdle ends.

// udpIdle ends a UDP flow nobody used for that long (docker's proxy: 90 s).
const udpIdle = 90 * time.Second

// relayUDP relays the datagrams of pc to the container's port until pc
// is closed.
func (p *publisher) relayUDP(pc net.PacketConn, port int) {
	defer p.wg.Done()
	var mu sync.Mutex
	flows := map[string]net.Conn{}
	defer func() {
		mu.Lock()
		for _, c := range flows {
			c.Close()
		}
		mu.Unlock()
	}()
	buf := make([]byte, 65535)
	for {
		n, client, err := pc.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		mu.Lock()
		in, ok := flows[client.String()]
		if !ok {
			if in, err = p.dialProto(port, unix.SOCK_DGRAM); err != nil {
				mu.Unlock()
				continue // as a lost datagram
			}
			flows[client.String()] = in
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				reply := make([]byte, 65535)
				for {
					in.SetReadDeadline(time.Now().Add(udpIdle))
					m, err := in.Read(reply)
					if err != nil {
						break
					}
					pc.WriteTo(reply[:m], client)
				}
				mu.Lock()
				delete(flows, client.String())
				mu.Unlock()
				in.Close()
			}()
		}
		mu.Unlock()
		in.Write(buf[:n])
	}
}
