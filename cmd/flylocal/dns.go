package main

import (
	"time"

	"github.com/party-sockets/party-sockets/internal/flydns"
)

// dnsSlow is how long every answer waits while the resolver is slow.
const dnsSlow = 4 * time.Second

// serveDNS runs Fly's internal DNS for the app (internal/flydns) on a
// loopback port, answering from the live machine table: a machine that
// stops leaves vms.<app>.internal at once. It returns the stop function.
func (c *cluster) serveDNS() (func(), error) {
	s, err := flydns.Listen(c.app, c.dnsMachines)
	if err != nil {
		return nil, err
	}
	c.dns = s
	return s.Close, nil
}

// dnsMachines lists the machines as DNS shows them now: started ones
// (their process runs, checks passing or not, as on Fly); the rest are
// stopped to DNS (all.vms and <id>.vm only).
func (c *cluster) dnsMachines() []flydns.Machine {
	out := make([]flydns.Machine, len(c.machines))
	for i, m := range c.machines {
		out[i] = flydns.Machine{ID: m.ID, Region: m.Region, IP: m.IP, Stopped: !m.running()}
	}
	return out
}

// setDNS switches the resolver "up", "down" (it never answers) or "slow".
func (c *cluster) setDNS(mode string) {
	c.dns.SetDown(mode == "down")
	c.dns.SetDelay(0)
	if mode == "slow" {
		c.dns.SetDelay(dnsSlow)
	}
}

// dnsMode is the resolver's switch: "up", "down" or "slow".
func (c *cluster) dnsMode() string {
	switch {
	case c.dns.Down():
		return "down"
	case c.dns.Delay() > 0:
		return "slow"
	}
	return "up"
}
