package main

// Where a process listens, and which addresses are this host's: a failure
// to listen is said in the program's own words, with what to do.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// hostAddrs returns a test for "is this address this host's": loopback, or
// one of the addresses of its interfaces when it started. A caller from one
// of those is the operator, even when it does not use loopback.
func hostAddrs() func(netip.Addr) bool {
	own := map[netip.Addr]bool{}
	for _, ip := range interfaceAddrs() {
		own[ip] = true
	}
	return func(ip netip.Addr) bool { return ip.IsLoopback() || own[ip] }
}

// interfaceAddrs is the addresses of this host's interfaces.
func interfaceAddrs() []netip.Addr {
	var own []netip.Addr
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
				own = append(own, ip.Unmap())
			}
		}
	}
	return own
}

// listen listens on ip:port, and says a failure in the program's own words,
// with what to do.
func listen(ip netip.Addr, port int) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(port)))
	switch {
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		var own []string
		for _, a := range interfaceAddrs() {
			if !a.IsLinkLocalUnicast() {
				own = append(own, a.String())
			}
		}
		return nil, fmt.Errorf("-i %s is not an address of this host; its addresses are %s. "+
			"Give one of them, or -i 0.0.0.0 with -a %s if that is the address others reach this host at "+
			"(a port forward)", ip, strings.Join(own, ", "), ip)
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("port %d on %s is in use by another process: stop it, or give another -p "+
			"(-p 0 takes any free port)", port, ip)
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("port %d needs privileges on this host (ports below 1024 do on most): "+
			"give -p 1024 or above", port)
	}
	return ln, err
}

// listenNode listens on -p, or else on a random port from nodePortMin to nodePortMax.
func listenNode(cfg config) (net.Listener, error) {
	if cfg.port >= 0 {
		return listen(cfg.ip, cfg.port)
	}
	pick := func() int { return nodePortMin + rand.IntN(nodePortMax-nodePortMin+1) }
	return listenRandom(cfg.ip, pick)
}

// listenRandom listens on ip at a port from pick. The node's range overlaps
// Linux's ephemeral ports (32768-60999), so a port may be taken: then it
// picks another.
func listenRandom(ip netip.Addr, pick func() int) (net.Listener, error) {
	for range listenTries {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(pick())))
		if !errors.Is(err, syscall.EADDRINUSE) {
			if err != nil {
				return listen(ip, 0) // says why in our words
			}
			return ln, nil
		}
	}
	return nil, fmt.Errorf("no free port found in %d-%d: give -p (-p 0 takes any free port)",
		nodePortMin, nodePortMax)
}
