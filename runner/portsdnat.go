package runner

import (
	"net/netip"

	"github.com/unionfuse/unionfuse/network"
)

// publishInKernel has the root bridge forward the container's published
// ports to its address on its first network (network.Bridge.Publish):
// the kernel's DNAT instead of the relay's copies in user space. Rootless
// containers (also on a rootless user's networks, whose bridges are not
// in the host's namespace), --network none and host keep the relay
// alone. The rules go with the container's address, on detach (stop,
// rm -f) or when a dead monitor's lease is reaped.
func publishInKernel(c *Container, atts []*network.Attachment, ports []Port) error {
	if len(ports) == 0 || len(atts) == 0 || len(c.Config.Networks) == 0 || !hostRoot() {
		return nil
	}
	d, err := driverFor(c, c.Config.Networks[0].Network)
	if err != nil {
		return err
	}
	br, ok := d.(*network.Bridge)
	if !ok {
		return nil
	}
	maps := make([]network.PortMap, 0, len(ports))
	for _, p := range ports {
		m := network.PortMap{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Proto: p.Protocol()}
		if p.HostIP != "" {
			if m.HostIP, err = netip.ParseAddr(p.HostIP); err != nil {
				continue // checked at create; the relay has it
			}
			m.HostIP = m.HostIP.Unmap()
		}
		maps = append(maps, m)
	}
	return br.Publish(c.ID, atts[0].IPAddress.Addr(), maps)
}
